"""Run lists, __statistic__/exper-list/NAME.txt. Usage: add_runs(root, name, [(tag, id)]); read_runs(root, name)

A list holds one <tag>/<id> per line; blank lines and # comments (also after an entry) are
allowed, so a researcher edits it by hand. Writers hold the list's lock, the one that runs take
to append to finished.txt, so concurrent `record`s and finishing runs never lose a line.
"""
import gc
import json
import os
from pathlib import Path

from utils.atomic import folders_for, locked, refuse_link, write_text
from utils.cli import UsageError, shorten, warn
from utils.names import plain
from utils.runs import BadRun, parse_selector, read_statistic, result_dir, shape_problem, statistic_dir

DEFAULT = "record"
FINISHED = "finished"


def check_name(name):
    """List, title and table names are plain file names."""
    if not plain(name) or name.endswith("."):
        raise UsageError(f"{shorten(name)!r} is not a valid list name: use letters, digits and . _ + - only, "
                         "starting with a letter or digit")
    return name


def list_path(root, name):
    return statistic_dir(root) / "exper-list" / f"{check_name(name)}.txt"


def shown(root, path):
    """A path as the user knows it: relative to the project."""
    return os.path.relpath(path, root)


def read_text(path, where):
    """A list's or title's text; one error naming the line when it is not UTF-8 (FileNotFoundError passes)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise UsageError(f"{where}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); "
                         "fix or delete that line") from None


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


def catch_up_finished(root):
    """Add to finished.txt the finished runs it lacks: a run killed between writing its last record
    and appending itself, or one whose append failed (a full or read-only __statistic__). Only runs
    whose statistic.json changed after finished.txt did are read, so this costs a stat per run."""
    path = list_path(root, FINISHED)
    try:
        since = path.stat().st_mtime_ns
    except FileNotFoundError:
        since = 0
    result, late = result_dir(root), []
    for tag in (n for n in _names(result) if not n.startswith((".", "_"))):
        for id_ in (n for n in _names(result / tag) if n.isdigit()):
            try:
                changed = os.stat(result / tag / id_ / "statistic.json").st_mtime_ns
            except OSError:
                continue
            if changed > since:
                try:
                    stat = read_statistic(result / tag / id_)
                except BadRun:
                    continue
                if stat.get("status") == "finished":
                    late.append((str(stat.get("ended") or ""), tag, int(id_)))
    if late:
        try:
            add_runs(root, FINISHED, [(tag, id_) for _, tag, id_ in sorted(late)])
        except OSError as e:
            warn(f"could not add finished runs to {shown(root, path)}: {e.strerror or e}")


def _names(folder):
    try:
        return os.listdir(folder)
    except OSError:
        return []


def read_list(root, name):
    """The list's runs in order, without duplicates. A missing list is an error."""
    if name == FINISHED:
        catch_up_finished(root)
    path = list_path(root, name)
    try:
        text = read_text(path, shown(root, path))
    except FileNotFoundError:
        hint = "runs add themselves when they finish" if name == FINISHED else f"`record <tag> -l {name}` makes it"
        raise UsageError(f"no list {shown(root, path)} yet; {hint}") from None
    runs = list(dict.fromkeys(parse_list(text, shown(root, path))))
    if not runs and name != FINISHED:
        raise UsageError(f"{shown(root, path)} holds no runs; `record <tag> -l {name}` adds some")
    return runs


def last_finished(root):
    """The most recently finished run: the last entry of finished.txt."""
    catch_up_finished(root)  # makes finished.txt when runs finished without it
    runs = read_list(root, FINISHED) if list_path(root, FINISHED).exists() else []
    if not runs:
        raise UsageError("no finished run yet; name the runs to add, as in `record <tag>[/<id>]`")
    return runs[-1]


def add_runs(root, name, runs):
    """Append the runs not yet in the list; return those added. A malformed list is left as it is."""
    path = list_path(root, name)
    with folders_for(path), locked(path):
        refuse_link(path)  # a list is the project's own file: never written through a link
        try:
            text = read_text(path, shown(root, path))
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
    return stat if isinstance(stat, dict) and not shape_problem(stat) else read_statistic(folder)  # it says why


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
