"""Collect the columns of a list's runs. Usage: title [NAME]

Writes __statistic__/title/NAME.json: a JSON list with one key per line, "<section>/<name>"
split at the first "/" (hyperparameters/lr, metrics/val/acc) or a top-level field (status,
seed, commit, started, duration_s). `table NAME` shows these columns in this order. Hide a
column by commenting its line out with //, reorder lines freely: running `title NAME` again
keeps your file as it is and only adds the keys it does not hold yet.
"""
import json
import re
from dataclasses import dataclass, field

from utils.atomic import folders_for, write_text
from utils.cli import UsageError, parser, project_root
from utils.runs import statistic_dir
from utils.statistic.lists import DEFAULT, check_name, read_runs, read_text, shown

META = ("status", "seed", "commit", "started", "duration_s")  # the top-level fields worth a column
SECTIONS = ("hyperparameters", "metrics")

_STRING = r'"(?:[^"\\]|\\.)*"'
_KEY_LINE = re.compile(rf"({_STRING})\s*(,?)\s*(//.*)?")
_COMMENTED_KEY_LINE = re.compile(rf"//\s*({_STRING})\s*,?\s*(//.*)?")


@dataclass
class Title:
    keys: list                                   # the columns shown, in order
    hidden: list = field(default_factory=list)   # keys commented out with //
    lines: list = None                           # the file's lines when it is one key per line
    close: int = 0                               # index of the line holding "]"


def title_path(root, name):
    return statistic_dir(root) / "title" / f"{check_name(name)}.json"


def keys_of(stats):
    """The union of the runs' keys: meta fields, then hyperparameters, then metrics, each in first-seen order."""
    keys = [k for k in META if any(k in stat for stat in stats)]
    for section in SECTIONS:
        seen = {}
        for stat in stats:
            values = stat.get(section)
            if isinstance(values, dict) and not values.keys() <= seen.keys():  # runs mostly share their keys
                seen.update(dict.fromkeys(values))
        keys += [f"{section}/{name}" for name in seen]
    return keys


def check_key(key, where):
    section, slash, name = key.partition("/") if isinstance(key, str) else ("", "", "")
    if not isinstance(key, str) or not key.strip() or not section or (slash and not name):
        raise UsageError(f'{where}: {json.dumps(key)} is not a key such as "metrics/val/acc"; fix or delete that line')
    return key


def _parse_lines(text, where):
    """The fast path for the file as we write it: one key per line. None when the text is laid out otherwise."""
    lines = text.splitlines()
    keys, hidden, close, state, no_comma = [], [], None, "before", None
    for number, line in enumerate(lines):
        s = line.strip()
        if not s or (s.startswith("//") and not _COMMENTED_KEY_LINE.fullmatch(s)):
            continue
        if state == "before" and s == "[":
            state = "inside"
        elif state == "inside" and s == "]":
            state, close = "after", number
        elif state == "inside" and (m := _KEY_LINE.fullmatch(s) or _COMMENTED_KEY_LINE.fullmatch(s)):
            key = check_key(json.loads(m.group(1)), f"{where}:{number + 1}")
            if s.startswith("//"):
                hidden.append(key)
                continue
            if no_comma:
                raise UsageError(f"{where}:{no_comma}: a comma is missing at the end of this line")
            keys.append(key)
            no_comma = None if m.group(2) else number + 1
        elif not (state != "inside" and s.startswith("//")):
            return None, number + 1
    if state != "after":
        return None, len(lines)
    return Title(keys, hidden, lines, close), None


def parse_title(text, where):
    """Read a title file: the fast line parser, else json5 for any other layout json5 accepts."""
    title, bad_line = _parse_lines(text, where)
    if title:
        title.keys = list(dict.fromkeys(title.keys))
        title.hidden = [k for k in dict.fromkeys(title.hidden) if k not in title.keys]
        return title
    import json5  # only for hand-laid-out files

    try:
        keys = json5.loads(text)
    except RecursionError:
        raise UsageError(f"{where}: nested too deep to be a list of keys; fix it, or delete the file and run "
                         "`title` again") from None
    except ValueError as e:
        line = re.match(r"<string>:(\d+) (.*)", str(e))
        at = f"{where}:{line.group(1)}: {line.group(2)}" if line else f"{where}: {e}"
        raise UsageError(f"{at}: not a JSON list of keys, even with comments; fix it, "
                         "or delete the file and run `title` again") from None
    if not isinstance(keys, list):
        raise UsageError(f"{where}: not a JSON list of keys; fix it, or delete the file and run `title` again")
    for key in keys:
        check_key(key, f"{where}:{bad_line}")
    commented = (_COMMENTED_KEY_LINE.fullmatch(line.strip()) for line in text.splitlines())
    hidden = [json.loads(m.group(1)) for m in commented if m]
    keys = list(dict.fromkeys(keys))
    return Title(keys, [k for k in dict.fromkeys(hidden) if k not in keys])


def read_title(root, name):
    """The title NAME, or None when there is none."""
    path = title_path(root, name)
    try:
        text = read_text(path, shown(root, path))
    except FileNotFoundError:
        return None
    return parse_title(text, shown(root, path))


def merged(title, keys, name):
    """The text of the title file holding `keys`: the user's file kept as it is, new keys added at the end."""
    def line(key):
        return f"  {json.dumps(key, ensure_ascii=False)},"

    if title is None:
        head = [f"// columns of `table {name}`: hide one with //, reorder freely; `title {name}` adds new keys", "["]
        return "\n".join(head + [line(k) for k in keys] + ["]", ""])
    known = set(title.keys) | set(title.hidden)
    new = [k for k in keys if k not in known]
    if title.lines is None:  # laid out by hand in some other way: rewrite it one key per line
        hidden = [f"  // {line(k).strip()}" for k in title.hidden]
        return "\n".join(["["] + [line(k) for k in title.keys] + hidden + [line(k) for k in new] + ["]", ""])
    lines = list(title.lines)
    if new:
        for i in range(title.close - 1, -1, -1):  # the key line before "]" needs its comma now
            m = _KEY_LINE.fullmatch(lines[i].strip())
            if m:
                if not m.group(2):
                    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
                    lines[i] = f"{indent}{m.group(1)}," + (f" {m.group(3)}" if m.group(3) else "")
                break
            if lines[i].strip():
                break
        lines[title.close:title.close] = [line(k) for k in new]
    return "\n".join(lines) + "\n"


def plan_title(root, name, stats):
    """(title, number of keys added, text to write or None) for title NAME holding these runs' keys."""
    old = read_title(root, name)
    keys = keys_of(stats)
    added = len(keys) if old is None else len(set(keys) - set(old.keys) - set(old.hidden))
    if old is not None and not added:
        return old, 0, None
    text = merged(old, keys, name)
    return parse_title(text, shown(root, title_path(root, name))), added, text


def write_title(root, name, text):
    path = title_path(root, name)
    with folders_for(path):
        write_text(path, text)


def build_parser():
    p = parser("title", __doc__.partition("\n\n")[2])
    p.add_argument("name", nargs="?", default=DEFAULT, metavar="NAME", help=f"the list and title (default: {DEFAULT})")
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    root = project_root()
    stats = [stat for _, _, stat in read_runs(root, args.name)]
    title, added, text = plan_title(root, args.name, stats)
    if text is not None:
        write_title(root, args.name, text)
    hidden = f", {len(title.hidden)} hidden with //" if title.hidden else ""
    print(f"{shown(root, title_path(root, args.name))}: {len(title.keys)} columns{hidden}; {added} new")
    return 0
