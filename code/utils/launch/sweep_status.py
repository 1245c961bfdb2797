"""sweep --status and sweep --stop: a row per run of the sweep, and stopping its queue, its runs and
its SLURM tasks so that each running run ends with a checkpoint.

Usage: status_main(root, "lrs")   # `sweep --status lrs`
       stop_main(root, "lrs")     # `sweep --stop lrs`; the same sweep command resumes it
"""
import os
import signal
import socket
import subprocess
import time

from utils.atomic import pid_alive
from utils.launch import commands as c
from utils.launch.sweep_plan import (
    ORDER,
    axes_of,
    count_runs,
    describe_axes,
    log_path,
    need_plan,
    row_status,
    say_counts,
    sweep_dir,
)
from utils.launch.sweep_queue import queue_running, read_queue
from utils.launch.sweep_slurm import slurm_tasks
from utils.procs import command_line, stat_fields
from utils.statistic.lists import shown


def status_main(root, prefix):
    from tabulate import tabulate

    plan = need_plan(root, prefix)
    variants, per = len(plan["variants"]), plan["runs_per_variant"]
    print(f"sweep {prefix}: {variants} variant{'s' * (variants != 1)} x {per} seed{'s' * (per != 1)} "
          f"({'fixed: -f' if plan['fixed_seed'] else 'fresh'}) = {len(plan['runs'])} runs, "
          f"off {plan['base'][:10]}: {describe_axes(axes_of(plan))}")
    queue, pids = read_queue(root, prefix), set()
    if queue_running(root, prefix):
        pids = {int(i) for i in queue.get("running") or {}}
        print(f"queue: running (pid {queue.get('pid')}, {queue.get('jobs')} at a time); "
              f"log {shown(root, log_path(root, prefix))}")
    elif queue.get("state") == "running":
        print(f"queue: gone (pid {queue.get('pid')} ended without a word: killed?); the same sweep command "
              f"resumes the sweep; log {shown(root, log_path(root, prefix))}")
    elif queue:
        print(f"queue: not running ({queue.get('state')} {str(queue.get('ended') or '')[:19].replace('T', ' ')}); "
              f"log {shown(root, log_path(root, prefix))}")
    active = slurm_tasks(plan)
    if plan.get("slurm"):
        jobs = ", ".join(str(j["job"]) for j in plan["slurm"])
        said = "squeue does not answer" if active is None else f"{len(active)} tasks queued or running"
        print(f"slurm: job{'s' * (len(plan['slurm']) > 1)} {jobs}; {said}")
    rows, counts = [], dict.fromkeys(ORDER, 0)
    for i, entry in enumerate(plan["runs"]):
        id_, state, counted = row_status(root, plan, i, active, pids)
        counts[counted] += 1
        rows.append([i, entry["tag"], entry["seed"], "" if id_ is None else id_, state])
    print(f"{len(rows)} runs: {say_counts(counts)}")
    print(tabulate(rows, ["#", "tag", "seed", "id", "status"], tablefmt="simple", disable_numparse=True))
    if counts["failed"]:
        print(f"what run <#> printed: {shown(root, sweep_dir(root, prefix) / 'tasks')}/<#>.log"
              + (f" (SLURM's: {shown(root, sweep_dir(root, prefix))}/slurm-<job>_<#>.out)" if plan.get("slurm")
                 else ""))
    return 0


def _parent(pid):
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def _alive_task(pid, prefix, i):
    """Whether the process runs and is task i of this sweep (a pid the plan holds may be recycled)."""
    line = command_line(pid)
    return pid_alive(pid) and line is not None and f" --task {prefix} {i} " in f"{line} "


def stop_main(root, prefix):
    plan = need_plan(root, prefix)
    queue, waiting = read_queue(root, prefix), []
    said = []
    if queue_running(root, prefix) and queue.get("pid"):
        try:
            os.kill(int(queue["pid"]), signal.SIGTERM)  # it starts nothing more and stops its runs
            said.append(f"queue {queue['pid']}")
        except ProcessLookupError:
            pass
    queue_pid = int(queue["pid"]) if said else None
    orphans = []  # tasks whose queue was killed while they ran on (the queue stops its own)
    for i, entry in enumerate(plan["runs"]):
        pid = entry.get("pid")
        if pid and entry.get("host") == socket.gethostname() and not entry.get("job") \
                and _alive_task(pid, prefix, i) and _parent(pid) != queue_pid:
            try:
                os.kill(pid, signal.SIGINT)
                orphans.append((i, pid))
            except ProcessLookupError:
                pass
    if orphans:
        said.append(f"{len(orphans)} runs left by a queue that is gone")
    active = slurm_tasks(plan)
    if active:
        pending = [f"{job}_{t}" for t, (job, state) in active.items() if state == "PENDING"]
        started = [f"{job}_{t}" for t, (job, state) in active.items() if state != "PENDING"]
        if pending:
            subprocess.run(["scancel", *pending], capture_output=True)
        if started:  # to the batch script, which is sweep's launcher (exec): the run checkpoints and ends
            subprocess.run(["scancel", "--batch", "--signal=TERM", *started], capture_output=True)
        said.append(f"{len(active)} SLURM tasks")
    if not said:
        c.say(f"sweep {prefix}: nothing is running ({say_counts(count_runs(root, plan, active))})")
        return 0
    c.say(f"sweep {prefix}: stopping {', '.join(said)}; each running run stops with a checkpoint")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        waiting = queue_running(root, prefix) or any(_alive_task(pid, prefix, i) for i, pid in orphans)
        if not waiting and active:
            now = slurm_tasks(plan)
            waiting = now is None or bool(now)
        if not waiting:
            break
        time.sleep(0.2)
    plan = need_plan(root, prefix)
    if waiting:
        c.say(f"sweep {prefix}: still stopping after 5 minutes; `sweep --status {prefix}` shows it", err=True)
        return 1
    c.say(f"sweep {prefix}: stopped ({say_counts(count_runs(root, plan, slurm_tasks(plan)))}); "
          "the same sweep command continues it")
    return 0
