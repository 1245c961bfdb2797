"""Writes that a crash cannot tear, and that never go through a link someone planted.

Usage: write_json(path, obj); link(target, path); append_line(path, line); remove_own_file(path)

A reader (or a resumed run) sees either the old file or the new one, never a mix: the new
content goes to a temporary file in the same folder, created new (O_EXCL, O_NOFOLLOW: a link
planted under its name is refused, not followed), flushed and fsync'd, then os.replace() puts it
in place (replacing a link at the destination, never writing through it). Symlinks are replaced
the same way. Appends refuse a file that is a symlink.
"""
import errno
import fcntl
import json
import math
import os
import stat
import threading
from contextlib import contextmanager
from pathlib import Path

from utils.procs import stat_fields

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _create(path):
    """A new file opened for writing; OSError when anything, a link included, is there already."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)


def temporary_name(path):
    # pid and thread: a run's writer thread and its main thread may write the same file
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def pid_alive(pid):
    """Whether the process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    fields = stat_fields(pid)
    return fields is None or fields[0] != "Z"


def clear_stale_temporaries(path):
    """Remove the temporary files of `path` that a writer killed mid-write left (its pid is gone)."""
    path = Path(path)
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(f".{path.name}.") and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        pid = name[len(path.name) + 2:].split(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            try:
                remove_own_file(path.parent / name)
            except OSError:
                pass


def write_bytes(path, data):
    """Write data to path atomically; an OSError names the file (a full disk, no permission)."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        remove_own_file(tmp)  # left by a killed process that had our pid
        with os.fdopen(_create(tmp), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            remove_own_file(tmp)  # a full disk leaves the old file, and no litter beside it
        except OSError:
            pass
        if isinstance(e, OSError) and e.filename is None:  # write() and fsync() name no file: say which
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    clear_stale_temporaries(path)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8", errors="surrogateescape"))


def plain_json(obj):
    """obj with NaN and infinities as the strings "NaN", "Infinity", "-Infinity": strict JSON that
    every reader takes (JavaScript's JSON.parse and jq refuse bare NaN); number() reads them back."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if obj != obj else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {k: plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_json(v) for v in obj]
    return obj


def write_json(path, obj):
    write_text(path, json.dumps(plain_json(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def link(target, path):
    """Point the symlink `path` at `target` (relative to the link's folder), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    remove_own_file(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def remove_own_file(path):
    """Remove a file or a link (the link itself, never what it points at); a folder is left alone."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "a folder where a file was expected", str(path))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def refuse_link(path):
    """OSError when path is a symlink: a file we append to must be the project's own."""
    if os.path.islink(path):
        raise OSError(errno.ELOOP, "is a symbolic link, which the template never writes through", str(path))


@contextmanager
def folders_for(path):
    """Make path's missing folders; when the block fails, remove those it made (a command that fails
    changes nothing), unless something other than our lock files landed in them meanwhile."""
    made, folder = [], Path(path).parent
    while not folder.exists():
        made.append(folder)
        folder = folder.parent
    for folder in reversed(made):
        folder.mkdir(exist_ok=True)
    try:
        yield
    except BaseException:
        for folder in made:
            try:
                for name in os.listdir(folder):
                    if name.startswith(".") and name.endswith(".lock"):
                        os.unlink(folder / name)
                folder.rmdir()
            except OSError:
                break
        raise


def held(path):
    """Whether some process holds an exclusive flock on path (a lock file, or a run's folder that a
    `con` trains); False when there is no such file. Only looks: any lock taken here is let go."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@contextmanager
def locked(path):
    """Hold an exclusive lock beside `path` (path + '.lock') while other writers wait."""
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    refuse_link(lock)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def append_line(path, line):
    """Append one whole line: one write() under a lock, so concurrent writers never interleave."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        refuse_link(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o644)
        try:
            os.write(fd, (line.rstrip("\n") + "\n").encode())
            os.fsync(fd)
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(path)) from None
        finally:
            os.close(fd)


def open_append(path):
    """A text file to append to (a run's log), refused when it is a symlink."""
    refuse_link(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o644)
    return os.fdopen(fd, "a", buffering=1, encoding="utf-8", errors="replace")
