"""Run lists, __statistic__/exper-list/NAME.txt. Usage: add_runs(root, name, [(tag, id)]); read_runs(root, name)

A list holds one <tag>/<id> per line; blank lines and # comments (also after an entry) are
allowed, so a researcher edits it by hand. Writers hold the list's lock, the one that runs take
to append to finished.txt, so concurrent `record`s and finishing runs never lose a line.
"""
import gc
import json
import os
import re

from utils.atomic import locked, write_text
from utils.cli import UsageError, shorten, warn
from utils.runs import BadRun, parse_selector, read_statistic, result_dir, statistic_dir

DEFAULT = "record"
FINISHED = "finished"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def check_name(name):
    """List, title and table names are plain file names."""
    if not _NAME.fullmatch(name) or name.endswith("."):
        raise UsageError(f"{shorten(name)!r} is not a valid list name: use letters, digits and . _ + - only, "
                         "starting with a letter or digit")
    return name


def list_path(root, name):
    return statistic_dir(root) / "exper-list" / f"{check_name(name)}.txt"


def shown(root, path):
    """A path as the user knows it: relative to the project."""
    return os.path.relpath(path, root)


def parse_list(text, where):
    """[(tag, id), ...] in file order; a malformed line is an error naming `where` and the line."""
    runs = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.partition("#")[0].strip()
        if not entry:
            continue
        try:
            tag, id_ = parse_selector(entry)
        except UsageError as e:
            raise UsageError(f"{where}:{number}: {entry!r} is not <tag>/<id> ({e}); fix or delete that line") from None
        if id_ is None:
            raise UsageError(f"{where}:{number}: {entry!r} needs an id, as in {tag}/0; fix or delete that line")
        runs.append((tag, id_))
    return runs


def read_list(root, name):
    """The list's runs in order, without duplicates. A missing list is an error."""
    path = list_path(root, name)
    try:
        text = path.read_text()
    except FileNotFoundError:
        hint = "runs add themselves when they finish" if name == FINISHED else f"`record <tag> -l {name}` makes it"
        raise UsageError(f"no list {shown(root, path)} yet; {hint}") from None
    runs = list(dict.fromkeys(parse_list(text, shown(root, path))))
    if not runs and name != FINISHED:
        raise UsageError(f"{shown(root, path)} holds no runs; `record <tag> -l {name}` adds some")
    return runs


def last_finished(root):
    """The most recently finished run: the last entry of finished.txt."""
    runs = read_list(root, FINISHED) if list_path(root, FINISHED).exists() else []
    if not runs:
        raise UsageError("no finished run yet; name the runs to add, as in `record <tag>[/<id>]`")
    return runs[-1]


def add_runs(root, name, runs):
    """Append the runs not yet in the list; return those added. A malformed list is left as it is."""
    path = list_path(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        try:
            text = path.read_text()
        except FileNotFoundError:
            text = ""
        present = set(parse_list(text, shown(root, path)))
        new = [run for run in dict.fromkeys(runs) if run not in present]
        if new:
            if text and not text.endswith("\n"):
                text += "\n"
            write_text(path, text + "".join(f"{tag}/{id_}\n" for tag, id_ in new))
    return new


def _read(folder):
    """read_statistic() without pathlib, which alone costs a third of the floor at 10,000 runs."""
    try:
        with open(f"{folder}/statistic.json", "rb") as f:
            stat = json.loads(f.read())
    except (OSError, ValueError):
        stat = None
    return stat if isinstance(stat, dict) else read_statistic(folder)  # it says what is wrong


def read_runs(root, name):
    """[(tag, id, statistic)] of the list's runs; an unreadable run is skipped with a warning."""
    loaded = []
    result = result_dir(root)
    collecting = gc.isenabled()
    gc.disable()  # parsed JSON holds no cycles; collections over a growing heap would cost a quarter of the time
    try:
        for tag, id_ in read_list(root, name):
            try:
                loaded.append((tag, id_, _read(f"{result}/{tag}/{id_}")))
            except BadRun as e:
                warn(f"skipped {tag}/{id_}: {e}")
    finally:
        gc.freeze()  # then unfreeze: the runs go straight to the oldest generation, not rescanned by young ones
        gc.unfreeze()
        if collecting:
            gc.enable()
    return loaded
