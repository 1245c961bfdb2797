"""Curves of runs, mean ± a band over seeds. Usage: plot <metric> [<metric> ...] [<tag>[/<id>] ...] [-l LIST]
[--x step|epoch] [--band std|sem|minmax|none] [-o FILE]

One panel per metric (a metrics.csv column such as val/mse or train/mse_step, or a glob: 'val/*'),
one line per tag: at each step (or epoch) the mean over the tag's runs that have a value there,
with a shaded band over those runs: std (sample, ddof=1), sem (std / sqrt(n)), minmax, or none.
The legend gives each tag's number of runs, and how many reach the last point when fewer do. A
run named as <tag>/<id> is drawn alone. The metrics come first; a later word naming a tag is a
run. No run named: every run, or those of -l LIST. Writes __statistic__/plot/<metrics>__<runs>.png
(or -o FILE: .png, .pdf or .svg) and prints its path. Needs no display.
"""
import hashlib
import math
import os
import re
from pathlib import Path
from typing import NamedTuple

from utils.atomic import folders_for, write_bytes
from utils.cli import UsageError, parser, project_root, warn
from utils.runs import parse_selector, run_ids, statistic_dir, tags
from utils.statistic.lists import check_name, shown

FORMATS = (".png", ".pdf", ".svg")
BANDS = ("std", "sem", "minmax", "none")
DPI = 150  # of the PNG: a 10.4 x 3.6 in figure is 1560 x 540 pixels
PANEL = (5.2, 3.6)  # inches of one panel
COLUMNS = 3  # panels side by side at most
MARKED = 30  # curves of at most this many points mark each point


def build_parser():
    p = parser("plot", __doc__.partition("\n\n")[2])
    p.usage = ("%(prog)s <metric> [<metric> ...] [<tag>[/<id>] ...] [-l LIST] [--x step|epoch]\n"
               "            [--band std|sem|minmax|none] [-o FILE]")
    p.add_argument("words", nargs="+", metavar="<metric>",
                   help="the metrics (names or globs such as 'val/*'), then the runs (a bare tag: all its runs)")
    p.add_argument("-l", "--list", metavar="LIST", help="also the runs of __statistic__/exper-list/LIST.txt")
    p.add_argument("--x", default="step", choices=("step", "epoch"), help="the x axis (default: step)")
    p.add_argument("--band", default="std", choices=BANDS,
                   help="the shaded band over a tag's runs: std (default), sem, minmax, none")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write here (.png, .pdf or .svg) instead of __statistic__/plot/<metrics>__<runs>.png")
    return p


class Group:
    """A line of the figure: a tag's runs (their mean, a band over them), or one run drawn alone."""

    def __init__(self, label, runs, alone=False):
        self.label, self.runs, self.alone = label, list(runs), alone


def split_words(root, words):
    """(metric patterns, run selectors): the first word is a metric; a later one that names an
    existing tag (<tag> or <tag>/<id>) is a run, any other a metric."""
    known, metrics, selectors = set(tags(root)), [words[0]], []
    for word in words[1:]:
        try:
            tag, _ = parse_selector(word)
        except UsageError:
            tag = None
        (selectors if tag in known else metrics).append(word)
    return metrics, selectors


def groups_of(root, selectors, list_name, pairs):
    """The lines: each selector's (a tag: all its runs; <tag>/<id>: that run alone), then the list's
    runs by tag; with neither, every run by tag."""
    lines = {}
    for word in selectors:
        tag, id_ = parse_selector(word)
        if id_ is None:
            lines.setdefault(tag, Group(tag, [(tag, i) for i in run_ids(root, tag)]))
        else:
            lines.setdefault(word, Group(word, [(tag, id_)], alone=True))
    if list_name is not None or not selectors:
        named = {run for g in lines.values() for run in g.runs}
        listed = pairs if not selectors else [run for run in pairs if run not in named]
        for tag, id_ in listed:
            group = lines.setdefault(tag, Group(tag, []))
            if (tag, id_) not in group.runs:
                group.runs.append((tag, id_))
    return list(lines.values())


def aligned(rows, runs, x):
    """(xs, values: runs x points, NaN where a run has no value, the runs present): one metric's
    rows of these runs aligned on x; a run's values sharing an x (--x epoch over step rows) are averaged."""
    import numpy as np
    import pandas as pd

    rows = rows[pd.MultiIndex.from_arrays([rows["tag"], rows["id"]]).isin(runs)]
    if rows.empty:
        return np.array([]), np.empty((0, 0)), []
    table = rows.groupby(["tag", "id", x], sort=False)["value"].mean().unstack(x).sort_index(axis=1)
    present = [run for run in runs if run in table.index]
    table = table.loc[present]
    return table.columns.to_numpy(dtype=float), table.to_numpy(dtype=float), present


def summary(values, band):
    """(n, mean, low, high) at each point over the runs present there; the band is NaN below 2 runs."""
    import numpy as np

    have = ~np.isnan(values)
    n = have.sum(axis=0)
    filled = np.where(have, values, 0.0)
    mean = filled.sum(axis=0) / n  # every point has a run
    if band == "minmax":
        low = np.where(have, values, np.inf).min(axis=0)
        high = np.where(have, values, -np.inf).max(axis=0)
    else:
        squares = np.where(have, (values - mean) ** 2, 0.0).sum(axis=0)
        std = np.sqrt(np.divide(squares, n - 1, out=np.full(n.shape, np.nan), where=n > 1))
        width = std / np.sqrt(n) if band == "sem" else std
        low, high = mean - width, mean + width
    few = n < 2
    return n, mean, np.where(few, np.nan, low), np.where(few, np.nan, high)


def legend_label(group, n, total):
    if group.alone:
        return group.label
    parts = [f"n={total}"]
    if n[-1] < total:
        parts.append(f"{n[-1]} at the end")
    elif n.min() < total:
        parts.append(f"{n.min()} at some points")
    return f"{group.label} ({', '.join(parts)})"


def draw(frame, groups, metrics, x="step", band="std"):
    """The matplotlib Figure: a panel per metric, a line (and band) per group."""
    import numpy as np
    from matplotlib.figure import Figure

    columns = min(len(metrics), COLUMNS)
    rows = math.ceil(len(metrics) / columns)
    figure = Figure(figsize=(PANEL[0] * columns, PANEL[1] * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(metrics):]:
        figure.delaxes(ax)
    finite = np.isfinite(frame["value"].to_numpy())
    for ax, metric in zip(axes, metrics, strict=False):
        rows = frame[(frame["metric"] == metric).to_numpy() & finite]  # a NaN or infinity the run logged: no point
        for k, group in enumerate(groups):
            xs, values, present = aligned(rows, group.runs, x)
            if not present:
                warn(f"{group.label} has no value of {metric} in its metrics.csv")
                continue
            n, mean, low, high = summary(values, band)
            color = f"C{k % 10}"
            ax.plot(xs, mean, color=color, label=legend_label(group, n, len(present)), linewidth=1.5,
                    marker="o" if len(xs) <= MARKED else None, markersize=3)
            if band != "none" and not group.alone and len(present) > 1:
                ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
        ax.set_xlabel(x)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return figure


def default_name(metrics, selectors, list_name):
    """<metrics>__<runs>.png, say val-mse+train-mse__base+wide-2.png; too long: cut, with a hash."""
    who = [s.replace("/", "-") for s in selectors] + ([f"list-{list_name}"] if list_name else [])
    name = "+".join(metrics) + "__" + ("+".join(who) or "all")
    name = re.sub(r"[^A-Za-z0-9._+-]", "-", name)
    if len(name) > 120:
        name = f"{name[:110]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return name + ".png"


def output_path(root, output, metrics, selectors, list_name):
    if output is None:
        return statistic_dir(root) / "plot" / default_name(metrics, selectors, list_name)
    path = Path(output)
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"-o {output!r}: name a .png, .pdf or .svg file")
    if path.is_dir():
        raise UsageError(f"-o {output!r} is a folder; name a file in it, as in {os.path.join(output, 'plot.png')}")
    return path


class Plot(NamedTuple):
    figure: object  # matplotlib.figure.Figure
    path: Path  # where it goes
    shown: str  # that path as printed: as -o gave it, else relative to the project
    runs: list  # [(tag, id)] chosen


def build(argv, root=None):
    """The Plot of these arguments: every check is made here, and nothing is written."""
    args = build_parser().parse_args(argv)
    root = project_root() if root is None else Path(root)
    if args.output is not None:
        output_path(root, args.output, [], [], None)  # a bad -o fails before anything is read
    list_name = check_name(args.list) if args.list is not None else None
    from utils.statistic import frames  # pandas: only now that the arguments are good

    patterns, selectors = split_words(root, args.words)
    pairs = frames.chosen(root, selectors, list_name)
    if not pairs:
        where = f"list {list_name}" if list_name else "this project"
        raise UsageError(f"no runs in {where}; `run <tag>` makes one, `expls` lists them")
    frame, names, skipped = frames.load_curves(root, pairs)
    if not names:
        one = f" ({skipped[0].partition(': ')[2]})" if len(skipped) == 1 else ""
        raise UsageError(f"none of the {len(pairs)} runs chosen has a metrics.csv row yet{one}")
    if missing := frames.unmatched(patterns, names):
        word, there = missing[0], ", ".join(sorted(names))
        if word == args.words[0] and word in tags(root):
            raise UsageError(f"{word!r} is a tag; name the metrics first, then the runs: plot <metric> ... {word}; "
                             f"the metrics are: {there}")
        if word != args.words[0] and _looks_like_run(word):
            raise UsageError(f"{word!r} is neither a metric in these runs' metrics.csv nor a tag (`expls` lists "
                             f"the tags); the metrics are: {there}")
        raise UsageError(f"no metric {word!r} in these runs' metrics.csv; the metrics are: {there}")
    metrics = frames.matching(patterns, names)
    for message in skipped:
        warn(message)
    groups = groups_of(root, selectors, list_name, pairs)
    figure = draw(frame, groups, metrics, args.x, args.band)
    path = output_path(root, args.output, metrics, selectors, list_name)
    return Plot(figure, path, str(path) if args.output is not None else shown(root, path), pairs)


def _looks_like_run(word):
    try:
        parse_selector(word)
    except UsageError:
        return False
    return True


def save(figure, path):
    import io

    data = io.BytesIO()
    figure.savefig(data, format=path.suffix.lower()[1:], dpi=DPI)
    with folders_for(path):
        write_bytes(path, data.getvalue())


def main(argv):
    root = project_root()
    plot = build(argv, root)
    save(plot.figure, plot.path)
    print(plot.shown)
    return 0
