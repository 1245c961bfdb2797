"""The commands of code/source.sh. Usage: python3 code/utils/exper.py <command> [args ...]

`. code/source.sh` defines run, con, rerun, expls, ... as calls of this file; `exper <command>`
reaches each one too. Commands that only read results import no torch, so they answer at once.
"""
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/: the template's and the research's modules

from utils.cli import call  # noqa: E402  (needs code/ on the path first)

# command -> (module, function); modules are imported only for the command asked for
COMMANDS = {
    "run": ("utils.launch.commands", "run_main"),
    "continue": ("utils.launch.commands", "continue_main"),
    "con": ("utils.launch.commands", "continue_main"),
    "rerun": ("utils.launch.commands", "rerun_main"),
    "re": ("utils.launch.commands", "rerun_main"),
    "expls": ("utils.statistic.listing", "expls_main"),
    "expels": ("utils.statistic.listing", "expels_main"),
    "record": ("utils.statistic.record", "main"),
    "title": ("utils.statistic.title", "main"),
    "table": ("utils.statistic.table", "main"),
    "itb": ("utils.statistic.itb", "main"),
    "plot": ("utils.statistic.plot", "main"),
    "complete": ("utils.statistic.complete", "main"),
}

USAGE = """usage: exper <command> [args ...]   (each command also stands alone after `. code/source.sh`)

  run <tag> [-f]                    tag HEAD, train, record everything
  con|continue <tag>[/<id>] [-f]    resume an unfinished run from its last checkpoint
  re|rerun <tag>[/<id>] [-f]        run the tag's code again under a new id; report reproduction
  expls                             one row per tag
  expels <tag>[/<id>]               one row per run of a tag (or the one run named)
  record [<tag>[/<id>] ...] [-l NAME]   add runs to __statistic__/exper-list/NAME.txt
  title [NAME]                      collect the keys of list NAME's runs
  table [NAME]                      build and print the table of list NAME
  itb [<tag>[/<id>] ...]            TensorBoard on 127.0.0.1 for the runs named
  plot <metric> ... [<tag>[/<id>] ...] [-l LIST]   curves: mean ± std over each tag's runs, as PNG/PDF/SVG

`<command> -h` tells more."""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; `exper -h` lists them", file=sys.stderr)
        return 2
    module, function = COMMANDS[argv[0]]
    return call(getattr(importlib.import_module(module), function), argv[1:])


if __name__ == "__main__":
    sys.exit(main())
