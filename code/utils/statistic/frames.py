"""Runs and curves as pandas DataFrames for notebooks and scripts. Usage: runs("base", "wide/2"); curves("base")

With code/ on the path (a notebook at the project root: `import sys; sys.path.insert(0, "code")`),
`from utils.statistic import runs, curves`. Runs are selected as the commands select them:
`<tag>` (all its runs) or `<tag>/<id>`, list_name="paper" for the runs of
__statistic__/exper-list/paper.txt (both: the runs named, then the list's), nothing for every run.
An unknown tag, id or list raises utils.cli.UsageError. root= reads another project (default: the
one around code/, or $EXPER_ROOT).

runs(): one row per run, the columns `table` has (tag, id, status, seed, commit, started,
duration_s, hyperparameters/<name>, metrics/<name>, in title's order), each with a proper dtype:
int64 (Int64 when some runs lack it), float64 (statistic.json's "NaN", "Infinity" and "-Infinity"
as floats), bool (boolean), str, datetime64 in UTC for `started`, object for lists and mixed
values. A run whose statistic.json is missing or corrupt is left out with a warning, as in `table`.

curves(): the selected runs' metrics.csv in long form: tag, id, epoch, step, kind, metric, value;
one row per value present (an empty cell is no row; a NaN the run logged stays, as NaN). kind is
"step" for the rows logged every log_every_steps steps (their metrics end in _step) and "epoch"
for the rows at a round's end (an epoch's end, or every eval_every_steps steps); epoch is the
epochs done before the row. metrics= picks metric names or glob patterns ("val/*"); one that
matches no metric of these runs raises UsageError naming the metrics there are.

This module imports pandas: only notebooks and `plot` import it; record, title and table never do.
"""
import fnmatch
import gc
import io
import math
from contextlib import contextmanager

import numpy as np
import pandas as pd

from utils.cli import UsageError, project_root, warn
from utils.runs import BadRun, result_dir, run_dir, run_ids, select, tags
from utils.statistic.lists import _read, read_list, shown
from utils.statistic.table import build_rows
from utils.statistic.title import keys_of

SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}  # how utils.atomic writes them
TIMES = ("started",)  # the columns holding ISO 8601 times
CURVE_COLUMNS = ["tag", "id", "epoch", "step", "kind", "metric", "value"]


def chosen(root, selection=(), list_name=None):
    """[(tag, id)]: the runs named (a bare tag: all its runs), then the list's; none of either: every run.
    An unknown tag, id or list is an error, raised before anything is read."""
    if not selection and list_name is None:
        return [(tag, id_) for tag in tags(root) for id_ in run_ids(root, tag)]  # iter_runs(), less its paths
    pairs = select(root, list(selection)) if selection else []
    if list_name is not None:
        pairs += read_list(root, list_name)
    return list(dict.fromkeys(pairs))


@contextmanager
def _no_collections():
    """As lists.read_runs: parsed JSON holds no cycles, so collecting while it grows only costs time."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if collecting:
            gc.enable()


def statistics(root, pairs):
    """[(tag, id, statistic)]; a run whose statistic.json is missing or corrupt is skipped with a warning."""
    loaded = []
    result = result_dir(root)
    with _no_collections():
        for tag, id_ in pairs:
            try:
                loaded.append((tag, id_, _read(f"{result}/{tag}/{id_}")))
            except BadRun as e:
                warn(f"skipped {tag}/{id_}: {e}")
    return loaded


# --- runs() -------------------------------------------------------------------------------

def _numeric_key(key):
    return key.startswith("metrics/") or key == "duration_s"


def column(key, values):
    """One column of runs(): the values of a key over the runs (None: the run lacks it) in their dtype."""
    if key in TIMES:
        texts = pd.Series([v if isinstance(v, str) else None for v in values], dtype=object)
        return pd.to_datetime(texts, format="ISO8601", utc=True, errors="coerce")
    present = [v for v in values if v is not None]
    missing = len(present) < len(values)
    kinds = {type(v) for v in present}
    if not present:
        return np.full(len(values), math.nan) if _numeric_key(key) else pd.Series(values, dtype=object)
    if kinds == {bool}:
        return pd.array(values, dtype="boolean") if missing else np.array(values, dtype=bool)
    if kinds == {int}:
        try:
            return pd.array(values, dtype="Int64") if missing else np.array(values, dtype=np.int64)
        except (OverflowError, TypeError, ValueError):  # beyond int64
            return pd.Series(values, dtype=object)
    if kinds <= {int, float, str} and (kinds - {str} or _numeric_key(key)) and \
            all(v in SPECIAL for v in present if isinstance(v, str)):
        return np.array([math.nan if v is None else SPECIAL[v] if isinstance(v, str) else v for v in values],
                        dtype=float)
    if kinds == {str}:
        return pd.array(values, dtype="str")
    return pd.Series(values, dtype=object)  # lists, dicts, mixed kinds: as they are


def runs(*selection, list_name=None, root=None):
    """One row per run chosen (see the module's doc): tag, id, then the columns `table` shows."""
    root = project_root() if root is None else root
    loaded = statistics(root, chosen(root, selection, list_name))
    keys = keys_of([stat for _, _, stat in loaded])
    rows = build_rows(loaded, keys)  # status reads `dead` for a running run whose process is gone
    cells = list(zip(*rows, strict=True)) if rows else [()] * (2 + len(keys))
    data = {"tag": pd.array(list(cells[0]), dtype="str"), "id": np.array(cells[1], dtype=np.int64)}
    for key, values in zip(keys, cells[2:], strict=True):
        data[key] = column(key, list(values))
    return pd.DataFrame(data)


# --- curves() -----------------------------------------------------------------------------

def read_metrics(path):
    """metrics.csv as a frame of strings (an empty cell is ""), without a torn last line; None when
    the file holds no row yet."""
    with open(path, newline="") as f:
        text = f.read()
    if not text.endswith("\n"):  # a kill mid-write leaves a torn last line (utils/train/metrics_file.py)
        text = text[: text.rfind("\n") + 1]
    if text.count("\n") < 2:
        return None
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)


def _run_curves(frame):
    """(epoch, step, kind, metric, value) arrays of one run's metrics.csv, row by row, in column order."""
    names = [c for c in frame.columns if c not in ("epoch", "step")]
    cells = frame[names].to_numpy(dtype=object)
    present = cells != ""
    rows, cols = np.nonzero(present)
    values = cells[present].astype(float)
    epochs = frame["epoch"].to_numpy(dtype=object).astype(np.int64)
    steps = frame["step"].to_numpy(dtype=object).astype(np.int64)
    plain = np.array([not n.endswith("_step") for n in names], dtype=bool)
    epoch_row = (present & plain).any(axis=1)  # a round's row: values under plain names
    kinds = np.where(epoch_row[rows], "epoch", "step")
    return epochs[rows], steps[rows], kinds, np.array(names, dtype=object)[cols], values


def load_curves(root, pairs):
    """(long frame of every metric, {metric: None} in first-seen order, [why a run was skipped]) of
    the runs; a run without a readable metrics.csv is skipped (one that has no row yet, silently)."""
    parts, names, skipped = [], {}, []
    for tag, id_ in pairs:
        path = run_dir(root, tag, id_) / "metrics.csv"
        try:
            frame = read_metrics(path)
            if frame is None:
                continue
            if "epoch" not in frame.columns or "step" not in frame.columns:
                raise ValueError("no epoch and step columns")
            epoch, step, kind, metric, value = _run_curves(frame)
        except FileNotFoundError:
            skipped.append(f"skipped {tag}/{id_}: {shown(root, path)} is missing")
            continue
        except (OSError, ValueError, pd.errors.ParserError) as e:
            skipped.append(f"skipped {tag}/{id_}: {shown(root, path)} is corrupt ({e})")
            continue
        names.update(dict.fromkeys(c for c in frame.columns if c not in ("epoch", "step")))
        parts.append((tag, id_, epoch, step, kind, metric, value))
    return frame_of(parts), names, skipped


def frame_of(parts):
    n = [len(p[6]) for p in parts]

    def joined(i, dtype):
        return np.concatenate([p[i] for p in parts]).astype(dtype) if parts else np.array([], dtype=dtype)

    return pd.DataFrame({
        "tag": pd.array(np.repeat([p[0] for p in parts], n).tolist(), dtype="str"),
        "id": np.repeat(np.array([p[1] for p in parts], dtype=np.int64), n),
        "epoch": joined(2, np.int64),
        "step": joined(3, np.int64),
        "kind": pd.array(joined(4, object).tolist(), dtype="str"),
        "metric": pd.array(joined(5, object).tolist(), dtype="str"),
        "value": joined(6, float),
    }, columns=CURVE_COLUMNS)


def unmatched(patterns, names):
    """The patterns (names or globs) that match none of the names."""
    return [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]


def matching(patterns, names):
    """The names matching any of the patterns, in the patterns' order, then the names'."""
    return list(dict.fromkeys(n for p in patterns for n in names if fnmatch.fnmatchcase(n, p)))


def curves(*selection, metrics=None, list_name=None, root=None):
    """The metrics.csv of the runs chosen (see the module's doc) in long form."""
    root = project_root() if root is None else root
    patterns = [metrics] if isinstance(metrics, str) else None if metrics is None else list(metrics)
    frame, names, skipped = load_curves(root, chosen(root, selection, list_name))
    for message in skipped:
        warn(message)
    if patterns is None:
        return frame
    if missing := unmatched(patterns, names):
        there = ", ".join(sorted(names)) or "none (no run has a metrics.csv row yet)"
        raise UsageError(f"no metric {missing[0]!r} in these runs' metrics.csv; the metrics are: {there}")
    return frame[frame["metric"].isin(matching(patterns, names))].reset_index(drop=True)
