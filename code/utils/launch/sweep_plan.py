"""A sweep's files and its plan, and what each of its runs has come to (read from the runs' own records).

Usage: plan = need_plan(root, "lrs"); update_plan(root, "lrs", lambda plan: ...)
       task_state(root, plan, 3)   # 'done', 'failed', 'busy', 'elsewhere', 'con' or 'new'
       say_counts(count_runs(root, plan))   # "4 done, 1 running, 0 failed, 1 waiting"

The plan, __statistic__/sweep/<prefix>/plan.json, holds the values, variants, tags, commits and
seeds, and each run's id, pid and exit code once its task has started.
"""
import ast
import fcntl
import json
import os
import socket
from pathlib import Path

from utils.atomic import held, locked, write_json
from utils.cli import UsageError, shorten
from utils.runs import BadRun, read_statistic, run_dir, run_ids, statistic_dir, status
from utils.statistic.lists import shown

PLAN_VERSION = 1
BUSY = 75  # a task's exit code when another process is at its run right now: try again later
STOPPED = (130, 143)  # Ctrl-C, SIGTERM: the run stopped with a checkpoint
ORDER = ("done", "running", "failed", "interrupted", "dead", "waiting")  # how --status counts the runs


# --- where a sweep keeps its files
def sweep_dir(root, prefix):
    return statistic_dir(root) / "sweep" / prefix


def plan_path(root, prefix):
    return sweep_dir(root, prefix) / "plan.json"


def log_path(root, prefix):
    return sweep_dir(root, prefix) / "log"


def task_file(root, prefix, i, suffix):
    return sweep_dir(root, prefix) / "tasks" / f"{i}.{suffix}"


def exper(root):
    return str(Path(root) / "code" / "utils" / "exper.py")


def task_command(prefix, i):
    """What each run of the sweep records as its command: the task that trains it (also how a run
    is found again when its id never reached the plan)."""
    return f"sweep {prefix} --task {i}"


# --- the plan: what the sweep is, and what each of its runs has come to
def read_plan(root, prefix):
    path = plan_path(root, prefix)
    try:
        plan = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UsageError(f"{shown(root, path)} is corrupt ({shorten(e)})") from None
    if not isinstance(plan, dict) or plan.get("version") != PLAN_VERSION or not isinstance(plan.get("runs"), list):
        raise UsageError(f"{shown(root, path)} is not a plan this template reads")
    return plan


def need_plan(root, prefix):
    plan = read_plan(root, prefix)
    if plan is None:
        raise UsageError(f"no sweep {prefix!r} (no {shown(root, plan_path(root, prefix))})")
    return plan


def update_plan(root, prefix, change):
    """Read, change and write the plan under its lock (tasks write their ids and outcomes at once)."""
    path = plan_path(root, prefix)
    with locked(path):
        plan = need_plan(root, prefix)
        change(plan)
        write_json(path, plan)
    return plan


def note_run(root, prefix, i, **fields):
    def change(plan):
        plan["runs"][i].update(fields)

    update_plan(root, prefix, change)


def axes_of(plan):
    return [(a["name"], [ast.literal_eval(v) for v in a["values"]]) for a in plan["axes"]]


def describe_axes(axes):
    return " ".join(f"{name}=[{', '.join(repr(v) for v in values)}]" for name, values in axes)


# --- one run of the sweep: what it has come to, and what to do about it
def find_record(root, plan, i):
    """(id, statistic) of the sweep's run i: the id the plan holds, else the newest run of the tag that
    this task started (its id may not have reached the plan); (None, None) when it has none."""
    entry = plan["runs"][i]
    tag, command = entry["tag"], task_command(plan["prefix"], i)
    if entry.get("id") is not None and (run_dir(root, tag, entry["id"]) / "statistic.json").exists():
        try:
            return entry["id"], read_statistic(run_dir(root, tag, entry["id"]))
        except BadRun as e:
            return entry["id"], {"status": "corrupt", "error": str(e)}
    for id_ in reversed(run_ids(root, tag)):
        try:
            record = read_statistic(run_dir(root, tag, id_))
        except BadRun:
            continue
        if record.get("command") == command:
            return id_, record
    return None, None


def try_lock(path):
    """An exclusive lock held for as long as the returned descriptor is open; None when another holds it.
    Not utils.atomic.locked, which waits for the lock: a task or queue that finds it taken leaves."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def elsewhere(record):
    host = (record.get("host") or {}).get("hostname")
    return bool(host) and host != socket.gethostname()


def task_state(root, plan, i, found=None, in_slurm=False):
    """What run i needs: 'done', 'failed' (crashed: not retried), 'busy' (a process here is at it),
    'elsewhere' (recorded as running on another machine), 'con' (interrupted or dead, with a
    checkpoint), 'new' (never began, or died before its first checkpoint: it starts afresh with the
    same seed). found: (id, record) already read, by the task that holds the task's lock itself."""
    if found is None and held(task_file(root, plan["prefix"], i, "lock")):
        return "busy"
    id_, record = find_record(root, plan, i) if found is None else found
    if record is None:
        return "new"
    state = record.get("status") if record.get("status") == "corrupt" else status(record)
    if state == "finished":
        return "done"
    if state in ("crashed", "corrupt"):
        return "failed"
    if state == "running" and not elsewhere(record):
        return "busy"
    if state == "running" and not in_slurm:  # under SLURM the scheduler says that task is gone
        return "elsewhere"
    from utils.train.checkpoint import candidates  # no torch: only lists files

    if record.get("sessions") and candidates(run_dir(root, plan["runs"][i]["tag"], id_) / "checkpoint"):
        return "con"
    return "new"


# --- how the runs stand, as --status shows them and the other commands count them
def row_status(root, plan, i, active, queue_pids):
    """(id, shown status, counted as) of run i; active: slurm_tasks(plan), queue_pids: the queue's tasks."""
    entry = plan["runs"][i]
    id_, record = find_record(root, plan, i)
    if record is not None:
        state = record.get("status") if record.get("status") == "corrupt" else status(record)
        if state == "running" and elsewhere(record) and plan.get("slurm") and i not in (active or {}) \
                and active is not None:
            state = "dead"  # its task is gone from SLURM's queue, and the run never said it ended
        counted = {"finished": "done", "crashed": "failed", "corrupt": "failed"}.get(state, state)
        return id_, state, counted if counted in ORDER else "failed"
    if i in (active or {}):
        state = active[i][1]
        return None, state.lower(), "running" if state == "RUNNING" else "waiting"
    if i in queue_pids or held(task_file(root, plan["prefix"], i, "lock")):
        return None, "starting", "running"
    if entry.get("exit") not in (None, 0, BUSY, *STOPPED):
        return None, f"failed (exit {entry['exit']})", "failed"
    return None, "waiting", "waiting"


def count_runs(root, plan, active=None, queue_pids=()):
    counted = dict.fromkeys(ORDER, 0)
    for i in range(len(plan["runs"])):
        counted[row_status(root, plan, i, active, queue_pids)[2]] += 1
    return counted


def say_counts(counted):
    shown_ = [f"{n} {name}" for name, n in counted.items() if n or name in ("done", "running", "failed", "waiting")]
    return ", ".join(shown_)
