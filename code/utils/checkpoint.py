"""Checkpoint files of a run: atomic writes, the epoch_last/epoch_best links, and pruning.

Usage: save(folder, "epoch_3.pth", snap, best=True, keep=2)   # in the writer thread
       path, saved = load_newest(folder)                      # what `con` resumes from

A checkpoint is written to a temporary file in the same folder (.<name>.tmp), fsync'd and
renamed into place; only then does epoch_last.pth (a relative symlink, itself replaced by a
rename) move to it. A kill at any instant leaves the previous complete checkpoint in place and
linked, and at worst a torn temporary file that nothing links to and nothing loads (the next
save removes it). Should epoch_last.pth's target still not load (a dangling link, a file
damaged after the fact), load_newest() falls back to the newest other checkpoint that loads.
No torch at import: `con` lists checkpoints without paying for it.
"""
import logging
import os
import re
from pathlib import Path

from utils.atomic import link

log = logging.getLogger(__name__)

LAST, BEST = "epoch_last.pth", "epoch_best.pth"
_NAME = re.compile(r"(epoch|step)_(\d+)\.pth")


def save(folder, name, snap, best=False, keep=2):
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = folder / f".{name}.tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(snap, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)  # the previous checkpoint and its links stay as they were
        if isinstance(e, Exception):
            raise CheckpointError(_failure(folder, name, e, "could not be written")) from e
        raise
    try:
        link(name, folder / LAST)
        if best:
            link(name, folder / BEST)
        _fsync_dir(folder)
    except OSError as e:
        raise CheckpointError(_failure(folder, name, e, "was written, but its links could not be")) from e
    prune(folder, keep)


class CheckpointError(Exception):
    """A checkpoint that could not be saved (the disk is full, say); the previous one is kept."""


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
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return -1


def prune(folder, keep):
    """Keep the newest `keep` checkpoints plus the targets of the links; remove leftovers."""
    folder = Path(folder)
    linked = {os.readlink(folder / n) for n in (LAST, BEST) if (folder / n).is_symlink()}
    files = sorted((p for p in folder.iterdir() if _NAME.fullmatch(p.name)), key=_order)
    for path in files[: max(len(files) - keep, 0)]:
        if path.name not in linked:
            path.unlink(missing_ok=True)
    for path in folder.glob(".*.tmp"):
        path.unlink(missing_ok=True)


def candidates(folder):
    """The checkpoint files to resume from, in the order to try them: epoch_last.pth's target,
    then every other complete-named checkpoint, newest first. Temporary files never appear."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = sorted((p for p in folder.iterdir() if _NAME.fullmatch(p.name) and p.is_file()), key=_order, reverse=True)
    last = folder / LAST
    target = folder / os.readlink(last) if last.is_symlink() else None
    if target is not None and target in files:
        files.remove(target)
        files.insert(0, target)
    return files


def load(path):
    import torch

    # our own files, written by torch.save of plain containers, numpy RNG state included
    return torch.load(path, map_location="cpu", weights_only=False)


def load_newest(folder):
    """(path, checkpoint) of the first of candidates() that loads, or (None, None) when none does.

    A file that fails to load is reported and skipped, never half used: torch.load reads the
    zip archive's central directory at the end of the file first, so a truncated file fails
    before anything is read from it.
    """
    for path in candidates(folder):
        try:
            return path, load(path)
        except Exception as e:  # noqa: BLE001  (any unreadable file is skipped, with its reason)
            log.warning("checkpoint %s does not load (%s: %s); trying an older one", path.name, type(e).__name__,
                        str(e).splitlines()[0] if str(e) else "")
    return None, None
