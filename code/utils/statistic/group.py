"""One row per tag: the mean ± sample std of each numeric metric. Usage: group(rows, aggregated, seeds)

Runs of one tag share their code and config and differ in seed, so a tag's row reports each
metric (and duration_s) as mean ± std over its seeds, std being the sample standard deviation
(ddof=1, empty for a single seed), with n the seeds that hold the value. Reruns of one seed
are one sample (their mean; equal when the run is deterministic), so they do not shrink the
std: the row's n counts seeds, and `runs` says how many runs were folded into them. Other
columns show their value when the runs agree, else "(k values)".
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
    if not values:  # a metric no run of the tag has
        return None
    present = [v for v in values if v is not None]
    if aggregate and present and all(map(_numeric, present)):
        return mean_std(present)
    distinct = []
    for v in values:  # lists are unhashable: no set()
        if v not in distinct:
            distinct.append(v)
    return distinct[0] if len(distinct) == 1 else f"({len(distinct)} values)"


def _per_seed(values, seeds):
    """The values with one per seed: reruns of a seed are one sample, their mean (None seeds stay apart)."""
    samples, index = [], {}
    for value, seed in zip(values, seeds, strict=True):
        if value is None:
            continue
        if seed is None or not _numeric(value):
            samples.append([value])
        elif seed in index:
            samples[index[seed]].append(value)
        else:
            index[seed] = len(samples)
            samples.append([value])
    return [s[0] if len(s) == 1 else math.fsum(s) / len(s) for s in samples]


def group(rows, aggregate, seeds=None):
    """rows [tag, id, cells...] -> [tag, n, runs, summaries...], tags in first-seen order.

    aggregate[j] tells whether cell j is reported as mean ± std; seeds[i] is row i's seed (None:
    every run its own sample). n is the tag's seeds, runs its runs.
    """
    seeds = [None] * len(rows) if seeds is None else seeds
    by_tag = {}
    for row, seed in zip(rows, seeds, strict=True):
        by_tag.setdefault(row[0], []).append((row, seed))
    grouped = []
    for tag, members in by_tag.items():
        member_seeds = [seed for _, seed in members]
        columns = list(zip(*(row[2:] for row, _ in members), strict=True))
        distinct = len({s for s in member_seeds if s is not None}) + member_seeds.count(None)
        cells = [_summary(_per_seed(c, member_seeds) if a else c, a) for c, a in zip(columns, aggregate, strict=True)]
        grouped.append([tag, distinct, len(members)] + cells)
    return grouped


def show(m):
    """'0.9123 ± 0.0046': the mean to the precision of two significant digits of the std; a std that is
    zero or only floating-point noise beside the mean shows as 0, the mean to 6 significant digits."""
    if m.std is None or not math.isfinite(m.std) or not math.isfinite(m.mean):
        return f"{m.mean:.6g}" + ("" if m.std is None else f" ± {m.std:.2g}")
    if m.std <= 1e-9 * abs(m.mean) or m.std == 0:
        return f"{m.mean:.6g} ± 0"
    decimals = max(0, 1 - math.floor(math.log10(float(f"{m.std:.2g}"))))  # 0.0999... counts as 0.10
    return f"{m.mean:.{decimals}f} ± {m.std:.{decimals}f}"
