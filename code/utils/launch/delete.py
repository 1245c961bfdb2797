"""Delete runs, or a tag with all its runs. Usage: expdel <tag>[/<id>] ... [-y]

A run still going is refused. Finished runs are deleted only after a yes (asked on a terminal;
-y answers it beforehand). Each deleted run leaves every list of __statistic__/exper-list/,
and a tag left with no run is deleted from git too: its commit stays, reachable from wherever
it was (a branch, the reflog). Nothing else is touched: titles, tables and plots made from the
runs stay as they were written.
"""
import os
import shutil
import sys

from utils.atomic import held, locked, refuse_link, write_text
from utils.cli import UsageError, parser, project_root
from utils.runs import BadRun, read_statistic, result_dir, run_dir, select, statistic_dir, status
from utils.statistic.lists import parse_list, read_text, shown


def build_parser():
    p = parser("expdel", __doc__.partition("\n\n")[2].split("\n\n")[0].replace("\n", " "))
    p.add_argument("runs", nargs="+", metavar="<tag>[/<id>]", help="a bare tag means all its runs, and the tag")
    p.add_argument("-y", "--yes", action="store_true", help="delete finished runs without asking")
    return p


def _state(root, tag, id_):
    try:
        return status(read_statistic(run_dir(root, tag, id_)))
    except BadRun:
        return "unreadable"


def confirm(question):
    """A yes from the terminal; False without one (no terminal, EOF, anything but y/yes)."""
    if not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def lists_of(root):
    folder = statistic_dir(root) / "exper-list"
    return sorted(folder.glob("*.txt")) if folder.is_dir() else []


def unlist(root, runs):
    """Take the runs out of every list (comments and other lines stay); the names of the lists changed."""
    gone, changed = set(runs), []
    for path in lists_of(root):
        where = shown(root, path)
        with locked(path):
            refuse_link(path)
            lines = read_text(path, where).splitlines(keepends=True)
            kept = [line for line in lines if not set(parse_list(line, where)) & gone]
            if len(kept) != len(lines):
                write_text(path, "".join(kept))
                changed.append(path.stem)
    return changed


def main(argv):
    args = build_parser().parse_args(argv)
    root = project_root()
    runs = select(root, args.runs)  # an unknown tag or id is an error: nothing deleted
    for path in lists_of(root):  # a malformed list is said before anything is deleted
        parse_list(read_text(path, shown(root, path)), shown(root, path))
    states = {run: _state(root, *run) for run in runs}
    going = [f"{t}/{i}" for (t, i), s in states.items() if s == "running" or held(run_dir(root, t, i))]
    if going:
        raise UsageError(f"{', '.join(going)} {'is' if len(going) == 1 else 'are'} still running; stop "
                         f"{'it' if len(going) == 1 else 'them'} first (Ctrl-C, or kill its pid)")
    finished = [f"{t}/{i}" for (t, i), s in states.items() if s == "finished"]
    if finished and not args.yes:
        listed = ", ".join(finished[:6]) + (f" and {len(finished) - 6} more" if len(finished) > 6 else "")
        if not confirm(f"delete {len(finished)} finished run{'s' * (len(finished) > 1)} ({listed})?"):
            raise UsageError(f"{len(finished)} of these runs finished and nothing was deleted; answer y on a "
                             "terminal, or add -y to delete them without asking")
    for tag, id_ in runs:
        folder = run_dir(root, tag, id_)
        if folder.is_symlink():
            folder.unlink()  # the link, never what it points at
        else:
            shutil.rmtree(folder)
    said = [f"deleted {', '.join(f'{t}/{i}' for t, i in runs[:6])}" + (f" and {len(runs) - 6} more"
                                                                       if len(runs) > 6 else "")]
    lists = unlist(root, runs)
    if lists:
        said.append(f"taken out of the list{'s' * (len(lists) > 1)} {', '.join(lists)}")
    for tag in dict.fromkeys(tag for tag, _ in runs):
        if not [n for n in os.listdir(result_dir(root) / tag) if n.isdigit()]:
            try:
                (result_dir(root) / tag).rmdir()
            except OSError:  # something of the user's is left in it
                pass
            said.append(_untag(root, tag))
    print("; ".join(s for s in said if s))
    return 0


def _untag(root, tag):
    """Delete the git tag of a tag with no run left (its commit stays); what to say about it."""
    from utils.launch import git as g

    try:
        marked = g.tag_commit(root, tag)
    except UsageError:  # results copied without the repository: no tag to delete
        return ""
    if marked is None:
        return ""
    g.git(root, "tag", "-d", tag)
    return f"tag {tag} deleted (its commit {marked[:10]} stays in git)"
