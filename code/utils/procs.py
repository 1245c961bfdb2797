"""Other processes as Linux's /proc shows them. Usage: state, ppid = stat_fields(pid)[:2]; command_line(pid)
       descendants(pid)

Both answer None when the process is gone or cannot be read; where there is no /proc at all
(macOS) the callers ask `ps` or assume the process is alive.
"""
import os


def stat_fields(pid):
    """The fields of /proc/<pid>/stat after "<pid> (<name>)": state, ppid, ... (the name may hold
    spaces and parentheses, so the split is at its last ")")."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].decode().split()
    except (OSError, IndexError):
        return None


def command_line(pid):
    """The process's command line, its arguments joined by spaces."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def descendants(pid):
    """Every process below pid (empty where there is no /proc): torchrun's workers, a run's training."""
    parents = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        fields = stat_fields(entry) if entry.isdigit() else None
        if fields:
            parents[int(entry)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        below = todo.pop()
        children = [p for p, parent in parents.items() if parent == below]
        found += children
        todo += children
    return found
