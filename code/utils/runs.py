"""Finding and reading runs from __result__ alone (no git, no torch).

Usage: for tag, id_, folder in iter_runs(root): stat = read_statistic(folder)

A run exists when __result__/<tag>/<id>/statistic.json exists. Tags starting with "_"
(the _scratch runs of `python code/main.py`) are never listed.
"""
import json
import os
import socket
from pathlib import Path

from utils.cli import UsageError, shorten
from utils.names import plain
from utils.procs import command_line

RESULT = "__result__"
STATISTIC = "__statistic__"
DATA = "__data__"

TAG_MAX = 100  # a folder name and a git ref file name both stop at 255 bytes; leave room for suffixes
TAG_RULE = (f"use at most {TAG_MAX} letters, digits and . _ + -, not starting with - or _, no '..', "
            "not ending in '.' or '.lock', not HEAD")


class BadRun(UsageError):
    """A run folder whose statistic.json is missing or unreadable: listings skip it with a
    warning; a command that needs that very run stops with this as its error line."""


def result_dir(root):
    return Path(root) / RESULT


def statistic_dir(root):
    return Path(root) / STATISTIC


def run_dir(root, tag, id_):
    return result_dir(root) / tag / str(id_)


def check_tag(tag):
    """Refuse tag names that git, the shell or our folders would misread."""
    ok = (plain(tag) and len(tag) <= TAG_MAX and ".." not in tag and not tag.endswith((".", ".lock"))
          and tag != "HEAD" and not tag.endswith("_HEAD"))  # git would read those as its own refs
    if not ok:
        raise UsageError(f"{shorten(tag)!r} is not a valid tag name: {TAG_RULE}")
    return tag


def parse_selector(text):
    """'tag' -> (tag, None); 'tag/3' -> (tag, 3). Raises UsageError on anything else."""
    tag, slash, id_text = text.partition("/")
    check_tag(tag)
    if not slash:
        return tag, None
    if not id_text.isdigit() or not id_text.isascii():
        raise UsageError(f"{shorten(text)!r}: the id after '/' must be a whole number >= 0, as in {tag}/0")
    return tag, int(id_text)


def run_ids(root, tag):
    """The ids of the tag's runs (folders holding a statistic.json), ascending."""
    folder = result_dir(root) / tag
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(n) for n in names if n.isdigit() and os.path.exists(folder / n / "statistic.json"))


def tags(root):
    try:
        names = os.listdir(result_dir(root))
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.startswith((".", "_")) and (result_dir(root) / n).is_dir())


def iter_runs(root, tag_list=None):
    """Yield (tag, id, folder) for every run, or for the runs of the tags given."""
    for tag in tags(root) if tag_list is None else tag_list:
        for id_ in run_ids(root, tag):
            yield tag, id_, run_dir(root, tag, id_)


def select(root, selectors):
    """Expand ['tag', 'tag/3', ...] into [(tag, id), ...] in order, without duplicates.

    A bare tag means all its runs. An unknown tag or id is an error (nothing is done).
    """
    chosen, ids_of = {}, {}  # a dict keeps the order; tags are listed once however often named
    for text in selectors:
        tag, id_ = parse_selector(text)
        if tag not in ids_of:
            ids_of[tag] = set(run_ids(root, tag))
        ids = ids_of[tag]
        if not ids:
            raise UsageError(f"no runs of tag {tag!r} in {result_dir(root)}; `expls` lists the tags")
        if id_ is not None and id_ not in ids:
            raise UsageError(f"no run {tag}/{id_}; `expels {tag}` lists its ids")
        for i in sorted(ids) if id_ is None else [id_]:
            chosen.setdefault((tag, i), None)
    return list(chosen)


def read_statistic(folder):
    path = Path(folder) / "statistic.json"
    try:
        with open(path, "rb") as f:
            stat = json.loads(f.read())
    except FileNotFoundError:
        raise BadRun(f"{path} is missing") from None
    except (OSError, ValueError) as e:
        raise BadRun(f"{path} is corrupt ({e})") from None
    if not isinstance(stat, dict):
        raise BadRun(f"{path} is corrupt (not a JSON object)")
    problem = shape_problem(stat)
    if problem:
        raise BadRun(f"{path} is corrupt ({problem})")
    return stat


_TEXT, _NUMBER, _WHOLE = (str,), (int, float), (int,)
# the fields of schema 1 whose type the listings rely on: (types, may be null)
SHAPE = {"tag": (_TEXT, False), "id": (_WHOLE, False), "status": (_TEXT, False), "commit": (_TEXT, True),
         "subject": (_TEXT, True), "seed": (_WHOLE, True), "pid": (_WHOLE, True), "started": (_TEXT, True),
         "ended": (_TEXT, True), "duration_s": (_NUMBER, True), "sessions": ((list,), False),
         "host": ((dict,), False), "hyperparameters": ((dict,), False), "metrics": ((dict,), False),
         "error": (_TEXT, True), "weights_sha256": (_TEXT, True)}


def shape_problem(stat):
    """What makes a parsed statistic.json unusable by the listings (a field of the wrong type), or None."""
    for key, (types, nullable) in SHAPE.items():
        value = stat.get(key)
        if key not in stat or (value is None and nullable):
            continue
        if not isinstance(value, types) or isinstance(value, bool):
            return f"{key!r} is {shorten(json.dumps(value), 40)}, not {'text' if types is _TEXT else types[0].__name__}"
    return None


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, TypeError):
        return True
    # the launcher's pid until main.py's session begins, then main.py's; a recycled pid is some other program's
    command = command_line(int(pid))
    return command is None or "main.py" in command or "exper.py" in command


def status(stat):
    """The run's status for listings: `dead` for a `running` run whose process is gone."""
    state = stat.get("status", "?")
    if state == "running":
        host = (stat.get("host") or {}).get("hostname")
        if host == socket.gethostname() and not _pid_alive(stat.get("pid")):
            return "dead"
    return state


def allocate_id(root, tag):
    """Take the next free id of the tag: mkdir is atomic, so two runs started at once differ."""
    folder = result_dir(root) / tag
    folder.mkdir(parents=True, exist_ok=True)
    taken = [int(n) for n in os.listdir(folder) if n.isdigit()]
    id_ = max(taken, default=-1) + 1
    while True:
        try:
            os.mkdir(folder / str(id_))
            return id_
        except FileExistsError:
            id_ += 1
