"""Naming table columns and reading conditions on them. Usage: headers(keys); resolve(name, keys); where(text, keys)

A column is a title key such as "metrics/val/acc". Its header is the last "/" segment ("acc")
unless another column ends the same way; then the shortest suffix no other column ends with
("val/acc"). On the command line a column is named by its full key, its header, or any
suffix that is unambiguous.
"""
import operator
import re

from utils.cli import UsageError

OPERATORS = {"=": operator.eq, "==": operator.eq, "!=": operator.ne,
             "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_CONDITION = re.compile(r"\s*([^<>=!]+?)\s*(<=|>=|!=|==|=|<|>)\s*(.*?)\s*")


def _suffixes(key):
    """'metrics/val/acc' -> ['acc', 'val/acc', 'metrics/val/acc']"""
    parts = key.split("/")
    return ["/".join(parts[i:]) for i in range(len(parts) - 1, -1, -1)]


def headers(keys):
    """The shortest unambiguous suffix of each key (the whole key when none is)."""
    ends = {}
    for key in keys:
        for suffix in _suffixes(key):
            ends[suffix] = ends.get(suffix, 0) + 1
    return [next((s for s in _suffixes(key) if ends[s] == 1), key) for key in keys]


def resolve(name, keys, shown=None):
    """The key a user means by `name`: a header shown on screen (shown: header -> key), a full key, else
    the one key ending in /name; when a hyperparameter and a metric both end so, the hyperparameter."""
    if shown and name in shown:
        return shown[name]
    if name in keys:
        return name
    matches = [key for key in keys if key.endswith("/" + name)]
    if len(matches) > 1:
        chosen = [key for key in matches if key.startswith("hyperparameters/")]
        matches = chosen if len(chosen) == 1 else matches
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"column {name!r} is ambiguous: it may be {' or '.join(matches)}; type the one you mean")
    raise UsageError(f"no column {name!r}; the columns are: {', '.join(headers(keys))}")


def number(value):
    """The value as a number when it is one (or a string spelling one), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def text(value):
    """A cell as the CSV writes it: missing and null are empty."""
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def where(condition, keys, shown=None):
    """'lr<0.01' -> (key, test): test(cell) tells whether a row's value meets the condition."""
    m = _CONDITION.fullmatch(condition)
    if not m:
        raise UsageError(f"--where {condition!r}: write <column><op><value>, op one of = != < <= > >=, "
                         "as in --where 'lr<0.01'")
    key, op, wanted = resolve(m.group(1), keys, shown), OPERATORS[m.group(2)], m.group(3)
    wanted_number = number(wanted)

    def test(cell):
        if cell is None or cell == "":
            return op(wanted, "") if op in (operator.eq, operator.ne) else False
        cell_number = number(cell)
        if cell_number is not None and wanted_number is not None:
            return op(cell_number, wanted_number)
        if isinstance(cell, bool):  # --where amp=true
            return op(str(cell).lower(), wanted.lower())
        return op(text(cell), wanted)

    return key, test
