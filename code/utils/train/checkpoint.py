"""Checkpoint files of a run: atomic, verified writes, the epoch_last/epoch_best links, and pruning.

Usage: save(folder, "epoch_3.pth", snap, best=True, keep=2)   # in the writer thread
       path, saved = load_newest(folder)                      # what `con` resumes from

A checkpoint is torch.save's zip archive with the SHA-256 of its own bytes written into the
archive's comment field (zip readers, torch.load among them, ignore it). It goes to a temporary
file in the same folder (created new, never through a link), is fsync'd and renamed into place;
only then does epoch_last.pth (a relative symlink, itself replaced by a rename) move to it. A
kill at any instant leaves the previous complete checkpoint in place and linked.

Before a checkpoint is used its bytes are hashed again: a file damaged after it was written
(a flipped bit, a truncated copy), or one this template did not write, is refused with its
reason, and load_newest() falls back to the newest other checkpoint that verifies. Loading
uses torch.load(weights_only=True): a checkpoint holds tensors and plain Python values only,
so a planted pickle cannot run code even if it carried a valid hash.
No torch at import: `con` lists checkpoints without paying for it.
"""
import hashlib
import logging
import os
import re
import struct
from pathlib import Path

from utils.atomic import link, remove_own_file

log = logging.getLogger(__name__)

LAST, BEST = "epoch_last.pth", "epoch_best.pth"
_NAME = re.compile(r"(epoch|step)_(\d+)\.pth")
_END = b"PK\x05\x06"  # the zip archive's end-of-central-directory record: 22 bytes, then its comment
_TAG = b"exper-sha256:"


class CheckpointError(Exception):
    """A checkpoint that could not be saved (the disk is full, say); the previous one is kept."""


class Unusable(Exception):
    """A checkpoint file that must not be resumed from: damaged, not ours, or unreadable."""


class _Hashing:
    """A file that hashes what is written to it (torch.save writes its archive front to back)."""

    def __init__(self, file):
        self.file, self.digest = file, hashlib.sha256()

    def write(self, data):
        self.digest.update(data)
        return self.file.write(data)

    def flush(self):
        self.file.flush()


def save(folder, name, snap, best=False, keep=2):
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = folder / f".{name}.tmp"
    try:
        remove_own_file(tmp)  # a torn one from a killed save, or a link planted there: never written through
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "wb") as f:
            out = _Hashing(f)
            torch.save(snap, out)
            f.seek(-2, os.SEEK_END)  # the archive's comment length, 0 as torch wrote it
            comment = _TAG + out.digest.hexdigest().encode()
            f.write(struct.pack("<H", len(comment)) + comment)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        remove_own_file(tmp)  # the previous checkpoint and its links stay as they were
        if isinstance(e, Exception):
            raise CheckpointError(_failure(folder, name, e, "could not be written")) from None
        raise
    try:
        link(name, folder / LAST)
        if best:
            link(name, folder / BEST)
        _fsync_dir(folder)
    except OSError as e:
        raise CheckpointError(_failure(folder, name, e, "was written, but its links could not be")) from None
    prune(folder, keep)


def _failure(folder, name, error, what):
    """One sentence: which checkpoint failed, why (the OS's words, which torch buries under its
    own RuntimeError), and which checkpoint `con` would resume from instead."""
    cause = error
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    why = f"{cause.strerror} (errno {cause.errno})" if cause is not None and cause.strerror else str(error)
    last = Path(folder) / LAST
    kept = f"{LAST} still points at {os.readlink(last)}" if last.is_symlink() else "there is no earlier checkpoint"
    return f"checkpoint {name} {what}: {why}; {kept}"


def _fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _order(path):
    """Checkpoints in training order: step_<global step>.pth and epoch_<n>.pth are told apart by mtime."""
    try:
        return path.lstat().st_mtime_ns
    except FileNotFoundError:
        return -1


def _is_file(path):
    """A regular file itself, not a link to one (a planted link must not be read, nor pruned through)."""
    try:
        return path.is_file() and not path.is_symlink()
    except OSError:
        return False


def prune(folder, keep):
    """Keep the newest `keep` checkpoints plus the targets of the links; remove leftovers."""
    folder = Path(folder)
    linked = {os.readlink(folder / n) for n in (LAST, BEST) if (folder / n).is_symlink()}
    files = sorted((p for p in folder.iterdir() if _NAME.fullmatch(p.name) and _is_file(p)), key=_order)
    for path in files[: max(len(files) - keep, 0)]:
        if path.name not in linked:
            path.unlink(missing_ok=True)
    for path in folder.glob(".*.tmp"):
        remove_own_file(path)


def candidates(folder):
    """The checkpoint files to resume from, in the order to try them: epoch_last.pth's target,
    then every other complete-named checkpoint, newest first. Temporary files never appear."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = sorted((p for p in folder.iterdir() if _NAME.fullmatch(p.name) and _is_file(p)), key=_order, reverse=True)
    last = folder / LAST
    target = folder / os.readlink(last) if last.is_symlink() else None
    if target is not None and target in files:
        files.remove(target)
        files.insert(0, target)
    return files


def verify(path):
    """Raise Unusable unless the file's bytes match the hash written into it."""
    size = os.lstat(path).st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - 22 - 2 - len(_TAG) - 64))
        tail = f.read()
        comment = tail[tail.rfind(_TAG):] if _TAG in tail else b""
        body = size - len(comment) - 2
        if not comment or len(comment) != len(_TAG) + 64 or tail[-len(comment) - 22:-len(comment) - 18] != _END:
            raise Unusable("it carries no hash: this template did not write it (or it is cut short)")
        f.seek(0)
        digest, left = hashlib.sha256(), body
        while left:
            chunk = f.read(min(left, 1 << 22))
            if not chunk:
                raise Unusable("it is cut short")
            digest.update(chunk)
            left -= len(chunk)
        digest.update(b"\0\0")  # the comment length as torch wrote it
    if digest.hexdigest().encode() != comment[len(_TAG):]:
        raise Unusable("its content does not match the hash written with it: it was damaged after it was written")


def load(path):
    """A verified checkpoint's content; Unusable when it is damaged, not ours, or does not load."""
    import pickle

    import torch

    verify(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Unusable(f"it does not load ({first[:200]})") from None


def load_newest(folder):
    """(path, checkpoint) of the first of candidates() that verifies and loads, or (None, None).

    A file that does not is reported and skipped, never half used.
    """
    for path in candidates(folder):
        try:
            return path, load(path)
        except (Unusable, OSError) as e:
            log.warning("checkpoint %s is not used: %s; trying an older one", path.name, _reason(e))
    return None, None


def load_named(folder, name):
    """(path, checkpoint) of the file a link such as epoch_best.pth names, or (None, None) without one."""
    path = Path(folder) / name
    if not path.is_symlink() and not _is_file(path):
        return None, None
    target = Path(folder) / os.readlink(path) if path.is_symlink() else path
    if not _is_file(target) or target.parent != Path(folder):
        raise Unusable(f"{name} does not point at a checkpoint of this run")
    return target, load(target)


def _reason(error):
    return str(error) if isinstance(error, Unusable) else f"{error.strerror or error}"
