"""expls and expels: what has been run. Usage: expls | expels <tag>

Both read __result__ alone (no git, no torch). A run still marked `running` whose process is
gone shows as `dead`.
"""
import os
import time
from collections import Counter
from datetime import datetime

from tabulate import tabulate

from utils.cli import parser, project_root, shorten, warn
from utils.runs import BadRun, iter_runs, read_statistic, run_dir, select, status, tags


def _date(iso):
    return iso[:16].replace("T", " ") if iso else ""


def _duration(seconds):
    if seconds is None:
        return ""
    minutes, s = divmod(int(seconds), 60)
    h, m = divmod(minutes, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def expls_main(argv):
    parser("expls", "One row per tag: its runs by status, commit, date, commit subject.").parse_args(argv)
    root = project_root()
    rows = []
    for tag in tags(root):
        counts, newest = Counter(), None
        for _, _, folder in iter_runs(root, [tag]):
            try:
                record = read_statistic(folder)
            except BadRun as e:
                warn(f"skipped: {e}")
                continue
            counts[status(record)] += 1
            newest = record
        if newest is None:
            continue
        runs = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        rows.append([tag, runs, (newest.get("commit") or "")[:10], _date(newest.get("started")),
                     shorten(newest.get("subject") or "", 60)])
    if not rows:
        print("no runs yet: `run <tag> -f` starts one")
        return 0
    print(tabulate(rows, ["tag", "runs", "commit", "last start", "subject"], tablefmt="simple"))
    return 0


def _headline_keys(records):
    """The metrics worth a column: the one config.py's best_metric names, its best value, every test/ one."""
    keys = []
    for record in records:
        best = (record.get("hyperparameters") or {}).get("best_metric")
        metrics = record.get("metrics")
        for key in metrics if isinstance(metrics, dict) else ():
            if (key.startswith("test/") or (best and key in (best, f"{best}_best"))) and key not in keys:
                keys.append(key)
    return keys


def _number(value):
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))


def expels_main(argv):
    p = parser("expels", "One row per run of a tag (or the one run <tag>/<id>): status, seed, start, duration, "
                         "epochs, headline metrics.")
    p.add_argument("tag", metavar="<tag>[/<id>]")
    a = p.parse_args(argv)
    root = project_root()
    records = []
    for tag, id_ in select(root, [a.tag]):  # an unknown tag or id is an error
        try:
            records.append((id_, read_statistic(run_dir(root, tag, id_))))
        except BadRun as e:
            warn(f"skipped: {e}")
    keys = _headline_keys(r for _, r in records)
    rows = []
    for id_, r in records:
        m = r.get("metrics", {})
        rows.append([id_, status(r), r.get("seed"), _date(r.get("started")),
                     _duration(duration(r, run_dir(root, a.tag.partition("/")[0], id_))), _progress(r),
                     *(_number(m.get(k)) for k in keys)])
    print(tabulate(rows, ["id", "status", "seed", "start", "duration", "progress", *keys], tablefmt="simple",
                   disable_numparse=True))
    return 0


def _progress(record):
    """How far the run got: epochs of the epochs it trains, or steps of its max_steps."""
    metrics, config = record.get("metrics") or {}, record.get("hyperparameters") or {}
    if config.get("max_steps"):
        return f"step {metrics.get('step', 0)}/{config['max_steps']}"
    total = config.get("epochs")
    return f"epoch {metrics.get('epoch', 0)}/{total}" if total else str(metrics.get("epoch", ""))


def duration(record, folder):
    """Seconds the run trained: its record's duration_s once it ended; while it runs, or once its process
    died without a word, the sessions so far, the last one up to now or to its last written record."""
    if record.get("status") != "running" and record.get("duration_s") is not None:
        return record["duration_s"]
    total = 0.0
    for session in record.get("sessions") or []:
        try:
            start = datetime.fromisoformat(session["started"]).timestamp()
            if session.get("ended"):
                total += datetime.fromisoformat(session["ended"]).timestamp() - start
            elif status(record) == "dead":
                total += os.stat(os.path.join(folder, "statistic.json")).st_mtime - start
            else:
                total += time.time() - start
        except (KeyError, TypeError, ValueError, OSError):
            continue
    return total if record.get("sessions") else None
