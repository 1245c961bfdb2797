"""Writes that a crash cannot tear. Usage: write_json(path, obj); link(target, path); append_line(path, line)

A reader (or a resumed run) sees either the old file or the new one, never a mix: the new
content goes to a temporary file in the same folder, is flushed and fsync'd, then os.replace()
puts it in place. Symlinks are replaced the same way.
"""
import fcntl
import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path


def write_bytes(path, data):
    path = Path(path)
    # pid and thread: a run's writer thread and its main thread may write the same file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves the old file, and no litter beside it
        raise


def write_text(path, text):
    write_bytes(path, text.encode())


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def link(target, path):
    """Point the symlink `path` at `target` (relative to the link's folder), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)


@contextmanager
def locked(path):
    """Hold an exclusive lock beside `path` (path + '.lock') while other writers wait."""
    path = Path(path)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
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
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line.rstrip("\n") + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
