"""Add runs to a list. Usage: record [<tag>[/<id>] ...] [-l NAME]

A bare tag adds all its runs; no run named adds the most recently finished one (the last line of
__statistic__/exper-list/finished.txt). Runs already in the list are not added twice; an unknown
tag or id adds nothing. The list, __statistic__/exper-list/NAME.txt, is plain text to edit freely.
"""
from utils.cli import parser, project_root, shorten, warn
from utils.runs import BadRun, read_statistic, run_dir, select, status
from utils.statistic.lists import (
    DEFAULT,
    add_runs,
    check_name,
    last_finished,
    list_path,
    shown,
)


def build_parser():
    p = parser("record", __doc__.partition("\n\n")[2])
    p.add_argument("runs", nargs="*", metavar="<tag>[/<id>]", help="runs to add (default: the last finished one)")
    p.add_argument("-l", "--list", default=DEFAULT, metavar="NAME", help=f"the list to add to (default: {DEFAULT})")
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    root = project_root()
    check_name(args.list)
    if args.runs:
        runs = select(root, args.runs)
    else:
        tag, id_ = last_finished(root)
        runs = select(root, [f"{tag}/{id_}"])
    added = add_runs(root, args.list, runs)
    unfinished = []
    for tag, id_ in added:
        try:
            state = status(read_statistic(run_dir(root, tag, id_)))
        except BadRun as e:
            state = f"unreadable: {e}"
        if state != "finished":
            unfinished.append(f"{tag}/{id_} ({state})")
    if unfinished:
        warn(f"added {len(unfinished)} run{'s' * (len(unfinished) > 1)} that did not finish: "
             f"{shorten(', '.join(unfinished), 300)}")
    where = shown(root, list_path(root, args.list))
    what = f"{added[0][0]}/{added[0][1]}" if len(added) == 1 else f"{len(added)} runs"
    already = len(runs) - len(added)
    print(f"added {what} to {where}" + (f" ({already} already there)" if already else ""))
    return 0
