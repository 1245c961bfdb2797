"""The commands of code/source.sh. Usage: python3 code/utils/exper.py <command> [args ...]

`. code/source.sh` defines run, con, rerun, expls, ... as calls of this file; `exper <command>`
reaches each one too. Commands that only read results import no torch, so they answer at once.
"""
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # code/: the template's and the research's modules

from utils.cli import call  # noqa: E402  (needs code/ on the path first)
from utils.commands import COMMANDS  # noqa: E402


def usage():
    lines = [f"  {use:<34}{what}" if len(use) < 34 else f"  {use}\n  {'':<34}{what}"
             for use, what in (entry[3:] for entry in COMMANDS.values()) if use]
    return ("usage: exper <command> [args ...]   (each command also stands alone after `. code/source.sh`)\n\n"
            + "\n".join(lines) + "\n\n`<command> -h` tells more.")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; `exper -h` lists them", file=sys.stderr)
        return 2
    module, function = COMMANDS[argv[0]][:2]
    return call(getattr(importlib.import_module(module), function), argv[1:])


if __name__ == "__main__":
    sys.exit(main())
