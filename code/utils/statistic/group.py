"""One row per tag: the mean ± sample std of each numeric metric. Usage: group(rows, aggregated)

Runs of one tag share their code and config and differ in seed, so a tag's row reports each
metric (and duration_s) as mean ± std over its runs, std being the sample standard deviation
(ddof=1, empty for a single run), with n the runs that hold the value. Other columns show
their value when the runs agree, else "(k values)".
"""
import math
from typing import NamedTuple


class Mean(NamedTuple):
    mean: float
    std: float  # sample std (ddof=1); None for one value
    n: int


def aggregated(key):
    """The columns a group reports as mean ± std."""
    return key.startswith("metrics/") or key == "duration_s"


def mean_std(values):
    n = len(values)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return Mean(mean, std, n)


def _numeric(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _summary(values, aggregate):
    present = [v for v in values if v is not None]
    if aggregate and present and all(map(_numeric, present)):
        return mean_std(present)
    distinct = []
    for v in values:  # lists are unhashable: no set()
        if v not in distinct:
            distinct.append(v)
    return distinct[0] if len(distinct) == 1 else f"({len(distinct)} values)"


def group(rows, aggregate):
    """rows [tag, id, cells...] -> [tag, n, summaries...], tags in first-seen order.

    aggregate[j] tells whether cell j is reported as mean ± std.
    """
    by_tag = {}
    for row in rows:
        by_tag.setdefault(row[0], []).append(row)
    grouped = []
    for tag, members in by_tag.items():
        columns = list(zip(*(row[2:] for row in members), strict=True))
        grouped.append([tag, len(members)] + [_summary(c, a) for c, a in zip(columns, aggregate, strict=True)])
    return grouped


def show(m):
    """'0.9123 ± 0.0046': the mean to the precision of two significant digits of the std."""
    if m.std is None or not math.isfinite(m.std) or not math.isfinite(m.mean):
        return f"{m.mean:.6g}" + ("" if m.std is None else f" ± {m.std:.2g}")
    if m.std == 0:
        return f"{m.mean:.6g} ± 0"
    decimals = max(0, 1 - math.floor(math.log10(float(f"{m.std:.2g}"))))  # 0.0999... counts as 0.10
    return f"{m.mean:.{decimals}f} ± {m.std:.{decimals}f}"
