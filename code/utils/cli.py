"""What every command shares: argument parsing that fails in one line, and errors for a person.

Usage: raise UsageError("what is wrong; what to do") anywhere under a command; call() prints
`error: ...` on stderr and returns a non-zero exit code instead of a traceback.
"""
import argparse
import os
import sys
from pathlib import Path


class UsageError(Exception):
    """Bad input from the user: reported as one `error:` line, nothing changed."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one `error:` line, not the usage block."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} -h`)")


def parser(prog, description):
    return Parser(prog=prog, description=description)


def call(function, argv):
    try:
        return function(argv) or 0
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `expls | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def warn(message):
    print(f"warning: {message}", file=sys.stderr)


def project_root():
    """The project: $EXPER_ROOT (set by source.sh), else the folder above this code/."""
    root = os.environ.get("EXPER_ROOT")
    return Path(root).resolve() if root else Path(__file__).resolve().parents[2]
