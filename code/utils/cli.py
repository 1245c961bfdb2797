"""What every command shares: argument parsing that fails in one line, and errors for a person.

Usage: raise UsageError("what is wrong; what to do") anywhere under a command; call() prints
`error: ...` on stderr and returns a non-zero exit code instead of a traceback. So does an
OSError naming a file (no permission, disk full): the machine's refusal, not a bug.
"""
import argparse
import errno
import os
import sys
from pathlib import Path


class UsageError(Exception):
    """Bad input from the user: reported as one `error:` line, nothing changed."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one `error:` line, not the usage block, and an unknown option
    is named as such (argparse would first complain about a missing argument)."""

    def error(self, message):
        raise UsageError(f"{shorten(message, 300)} (see `{self.prog} -h`)")

    def parse_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        value_next = False  # the word after an option that takes a value is that value, whatever it looks like
        for word in args:
            if value_next or word == "--":
                if word == "--" and not value_next:
                    break
                value_next = False
                continue
            name = word.split("=", 1)[0]
            if word.startswith("-") and word != "-" and not _negative_number(word):
                if not self._known(name):
                    raise UsageError(f"unknown option {shorten(word)!r} (see `{self.prog} -h`)")
                action = self._option_string_actions.get(name)
                value_next = "=" not in word and action is not None and action.nargs != 0
        return super().parse_args(args, namespace)

    def _known(self, name):
        options = self._option_string_actions
        if name in options:
            return True
        if not name.startswith("--") and len(name) > 2 and name[:2] in options:  # -lNAME, -w'x<1'
            return True
        return name.startswith("--") and any(o.startswith(name) for o in options)  # an abbreviation


def _negative_number(word):
    try:
        float(word)
    except ValueError:
        return False
    return True


def shorten(text, limit=80):
    """A value as a terminal message shows it: at most `limit` characters (files keep it whole)."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit - 20]}...({len(text):,} characters)"


def parser(prog, description):
    return Parser(prog=prog, description=description)


# what to do about a file the machine refuses us, by errno
_FIX = {errno.EACCES: "check its permissions", errno.EPERM: "check its permissions",
        errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some disk space (quota)",
        errno.EROFS: "the file system is read-only"}


def call(function, argv):
    """Run a command; bad input and a machine that refuses a file are one `error:` line each.
    Anything else is a bug and keeps its traceback."""
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
    except OSError as e:
        if e.filename is None:  # no file to blame: more likely our bug than the machine
            raise
        fix = f"; {_FIX[e.errno]}" if e.errno in _FIX else ""
        print(f"error: {e.filename}: {e.strerror or e}{fix}", file=sys.stderr)
        return 1


def warn(message):
    print(f"warning: {message}", file=sys.stderr)


def project_root():
    """The project: $EXPER_ROOT (set by source.sh), else the folder above this code/."""
    root = os.environ.get("EXPER_ROOT")
    return Path(root).resolve() if root else Path(__file__).resolve().parents[2]
