"""Tab completion's candidates. Usage: python3 -S code/utils/statistic/complete.py <index> <word> ...

source.sh's completion functions pass the command line as words (the command first) and the
index of the word being completed; this prints the tags, <tag>/<id>s or list names that fit,
one per line. It reads folder names under __result__ and __statistic__/exper-list only (no git,
no torch, no JSON) and imports nothing but os and sys, so with -S a Tab press costs a few
milliseconds. `exper complete <index> <word> ...` answers the same.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # code/

from utils.commands import COMMANDS  # noqa: E402  (plain data, nothing else imported)
from utils.names import plain  # noqa: E402

KIND = {name: entry[2] for name, entry in COMMANDS.items() if name != "complete"}
VALUED = {"-l", "--list", "-w", "--where", "-s", "--sort", "--format", "--host", "--stop", "-o", "--output",
          "--x", "--band", "-n", "--runs", "--jobs", "--sbatch"}  # options taking a value


def root():
    here = os.path.abspath(__file__)  # <project>/code/utils/statistic/complete.py
    return os.environ.get("EXPER_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(here))))


def _names(folder):
    try:
        return os.listdir(folder)
    except OSError:
        return []


def tags(prefix):
    result = os.path.join(root(), "__result__")
    found = (n for n in _names(result) if n.startswith(prefix) and plain(n))
    return sorted(n for n in found if os.path.isdir(os.path.join(result, n)))


def ids(tag, prefix=""):
    folder = os.path.join(root(), "__result__", tag)
    found = [n for n in _names(folder) if n.isdigit() and n.isascii() and n.startswith(prefix)
             and os.path.exists(os.path.join(folder, n, "statistic.json"))]
    return [f"{tag}/{n}" for n in sorted(found, key=int)]


def _unfinished(path):
    """Whether a run's record is not `finished` (read as text: no json import for a Tab press)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return '"status": "finished"' not in f.read()
    except OSError:
        return False


def runs(prefix, unfinished=False):
    """Tags, and once the word names one tag (or holds its '/'), that tag's <tag>/<id>s; unfinished:
    only the runs `con` can continue, and the tags that have one."""
    tag, slash, id_prefix = prefix.partition("/")
    if slash:
        found = ids(tag, id_prefix) if plain(tag) else []
    else:
        found = tags(prefix)
        if unfinished:
            found = [t for t in found if ids_left(t)]
        found = found + ids(found[0]) if len(found) == 1 else found
    if unfinished:
        result = os.path.join(root(), "__result__")
        found = [f for f in found if "/" not in f or _unfinished(os.path.join(result, f, "statistic.json"))]
    return found


def ids_left(tag):
    result = os.path.join(root(), "__result__")
    return any(_unfinished(os.path.join(result, run, "statistic.json")) for run in ids(tag))


def lists(prefix):
    folder = os.path.join(root(), "__statistic__", "exper-list")
    names = (n[:-4] for n in _names(folder) if n.endswith(".txt"))
    return sorted(n for n in names if n.startswith(prefix) and plain(n))


def sweeps(prefix):
    """The sweeps made so far (folders of __statistic__/sweep/ holding a plan)."""
    folder = os.path.join(root(), "__statistic__", "sweep")
    found = (n for n in _names(folder) if n.startswith(prefix) and plain(n))
    return sorted(n for n in found if os.path.exists(os.path.join(folder, n, "plan.json")))


def candidates(index, words):
    """What may stand at words[index] (the word being typed, perhaps empty)."""
    words = list(words) + [""] * (index + 1 - len(words))
    command = os.path.basename(words[0])
    if command == "exper":
        if index == 1:
            return [c for c in KIND if c.startswith(words[1])]
        command, words, index = words[1], words[1:], index - 1
    word, before = words[index], words[1:index]
    if word.startswith("-") or index < 1:
        return []
    if command == "sweep" and before and before[-1] in ("--status", "--stop"):
        return sweeps(word)
    if before and before[-1] in VALUED:
        return lists(word) if command in ("record", "plot") and before[-1] in ("-l", "--list") else []
    positionals = [w for i, w in enumerate(before) if not w.startswith("-") and (i == 0 or before[i - 1] not in VALUED)]
    kind = KIND.get(command, "")
    if (not kind.endswith("*") and positionals) or (command == "plot" and not positionals):  # plot: a metric first
        return []
    kind = kind.rstrip("*")
    if kind == "tag":
        return tags(word)
    if kind in ("run", "unfinished"):
        return runs(word, unfinished=kind == "unfinished")
    if kind == "list":
        return lists(word)
    return []


def main(argv):
    if not argv or not argv[0].isdigit():
        print("error: complete needs <index> <word> ...: the index of the word being completed, "
              "then the command line's words, the command first", file=sys.stderr)
        return 2
    for name in candidates(int(argv[0]), argv[1:]):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
