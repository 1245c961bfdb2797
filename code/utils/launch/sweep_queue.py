"""The sweep's runs on this machine: one task trains or continues one run, and a detached queue runs
the tasks N at a time, each on a GPU of its own or a share of the cores.

Usage: spawn_queue(root, "lrs", 2)   # `sweep --queue lrs --jobs 2`, in a session of its own
       task_main(root, "lrs", "3")   # `sweep --task lrs 3`: what the queue's jobs and SLURM's array tasks run
       queue_running(root, "lrs"); read_queue(root, "lrs")   # {"pid", "jobs", "state", "running": {task: pid}}
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

from utils.atomic import held, locked, write_json
from utils.cli import UsageError, shorten
from utils.launch import commands as c
from utils.launch.sweep_plan import (
    BUSY,
    STOPPED,
    count_runs,
    elsewhere,
    exper,
    find_record,
    log_path,
    need_plan,
    note_run,
    say_counts,
    sweep_dir,
    task_command,
    task_file,
    task_state,
    try_lock,
)
from utils.runs import run_dir
from utils.statistic.lists import add_runs
from utils.statistic.run_record import now


# --- --task: train or continue one run of the sweep (what the queue's jobs and SLURM's array tasks run)
def task_main(root, prefix, index):
    plan = need_plan(root, prefix)
    if not index.isdigit() or int(index) >= len(plan["runs"]):
        raise UsageError(f"sweep {prefix} has tasks 0 to {len(plan['runs']) - 1}, not {shorten(index)!r}")
    i = int(index)
    entry = plan["runs"][i]
    tag = entry["tag"]
    lock = try_lock(task_file(root, prefix, i, "lock"))  # noqa: F841  (held while this process lives)
    if lock is None:
        c.say(f"error: task {i} of sweep {prefix} ({tag}) is being run by another process right now", err=True)
        return BUSY
    in_slurm = bool(os.environ.get("SLURM_JOB_ID"))
    note_run(root, prefix, i, pid=os.getpid(), host=socket.gethostname(), job=os.environ.get("SLURM_JOB_ID"),
              exit=None, started=now())
    if in_slurm and os.environ.get("SLURM_CPUS_PER_TASK") and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = os.environ["SLURM_CPUS_PER_TASK"]  # the task's cores, not the node's
    code, id_ = 1, None
    try:
        id_, record = find_record(root, plan, i)
        state = task_state(root, plan, i, (id_, record), in_slurm)
        if state == "done":
            c.say(f"{tag}/{id_} is finished")
            code = 0
        elif state == "failed":
            last = ((record.get("error") or "").strip().splitlines() or ["no error recorded"])[-1]
            c.say(f"error: {tag}/{id_} {record.get('status')}: {last}; a sweep does not retry it "
                  f"(`con {tag}/{id_}` continues it by hand)", err=True)
        elif state in ("busy", "elsewhere"):
            c.say(f"error: {tag}/{id_} is running (pid {record.get('pid')} on {record['host'].get('hostname')})",
                  err=True)
            code = BUSY
        elif state == "con":
            threads = (record.get("host") or {}).get("threads")
            if threads:  # sums on the CPU may depend on it: continue with what the run trained with
                os.environ["OMP_NUM_THREADS"] = str(threads)
            code = c.continue_main([f"{tag}/{id_}", *(["--dead"] if elsewhere(record) else [])])
        else:
            if record is not None:  # it never got to a checkpoint: its seed starts afresh
                c.say(f"note: {tag}/{id_} ended without a checkpoint to continue from; training it again "
                      "with the same seed", err=True)
                c.discard(root, tag, id_, made_tag=False)
            code = c.train_tag(root, tag, entry["seed"], plan["fixed_seed"], task_command(prefix, i),
                               started=lambda new: note_run(root, prefix, i, id=new))
            id_, record = find_record(root, need_plan(root, prefix), i)
    except UsageError as e:
        c.say(f"error: {e}", err=True)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    finally:
        note_run(root, prefix, i, exit=code, ended=now(), **({"id": id_} if id_ is not None else {}))
    if id_ is not None and (run_dir(root, tag, id_) / "statistic.json").exists():
        add_runs(root, prefix, [(tag, id_)])
    return code


# --- the queue on this machine
def visible_gpus():
    """The GPUs the jobs share out: CUDA_VISIBLE_DEVICES's entries, else those the driver lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    try:
        return [str(i) for i in range(len(os.listdir("/proc/driver/nvidia/gpus")))]
    except OSError:
        return []


def _log(text):
    c.say(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}")


def _queue_file(root, prefix):
    return sweep_dir(root, prefix) / "queue.json"


def _write_queue(root, prefix, state):
    path = _queue_file(root, prefix)
    with locked(path):
        write_json(path, state)


def read_queue(root, prefix):
    try:
        return json.loads(_queue_file(root, prefix).read_text())
    except (OSError, ValueError):
        return {}


def _queue_lock(root, prefix):
    return sweep_dir(root, prefix) / "queue.lock"


def queue_running(root, prefix):
    return held(_queue_lock(root, prefix))


def queue_main(root, prefix, jobs):
    """Run the sweep's unfinished tasks, `jobs` at a time, until none is left or --stop says stop."""
    os.chdir(root)
    lock = try_lock(_queue_lock(root, prefix))  # noqa: F841  (one queue per sweep, held while it lives)
    if lock is None:
        _log("another queue runs this sweep; this one leaves")
        return 0
    stopping = []
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    plan = need_plan(root, prefix)
    total, gpus, cores = len(plan["runs"]), visible_gpus(), os.cpu_count() or 1
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, cores // jobs))
    state = {"pid": os.getpid(), "jobs": jobs, "started": now(), "state": "running", "running": {}}
    _write_queue(root, prefix, state)
    share = (f"one GPU each of {','.join(gpus)}" + (" (shared: more jobs than GPUs)" if jobs > len(gpus) else "")
             if gpus else f"OMP_NUM_THREADS={threads} each")
    _log(f"queue {os.getpid()}: {total} runs of sweep {prefix}, {jobs} at a time, {share}")
    todo, running, slots, retry_at = list(range(total)), {}, list(range(jobs)), {}
    stop_sent = False
    while True:
        if stopping and not stop_sent:
            _log(f"stopping: no new runs; {len(running)} running stop with a checkpoint")
            for proc, _, _ in running.values():
                try:
                    os.kill(proc.pid, signal.SIGINT)  # the launcher passes it on: the run checkpoints
                except ProcessLookupError:
                    pass
            stop_sent = True
        changed = False
        for i, (proc, slot, out) in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            out.close()
            del running[i]
            slots.append(slot)
            changed = True
            if code == BUSY:
                todo.append(i)
                retry_at[i] = time.monotonic() + 2
                _log(f"task {i}: another process is at it; later")
            else:
                said = {0: "finished"}.get(code) or ("stopped" if code in STOPPED else f"failed (exit {code})")
                _log(f"task {i} {plan['runs'][i]['tag']}: {said}")
        if not stopping and slots and todo:
            plan = need_plan(root, prefix)
            for i in list(todo):
                if not slots:
                    break
                if retry_at.get(i, 0) > time.monotonic():
                    continue
                what = task_state(root, plan, i)
                if what in ("done", "failed", "elsewhere"):
                    todo.remove(i)
                    if what == "elsewhere":
                        _log(f"task {i} {plan['runs'][i]['tag']}: recorded as running on another machine; "
                             "left alone (`con <tag>/<id> --dead` continues it if that machine is gone)")
                    continue
                if what == "busy":
                    retry_at[i] = time.monotonic() + 2
                    continue
                todo.remove(i)
                slot = slots.pop(0)
                env = {**os.environ, "EXPER_ROOT": str(root), "OMP_NUM_THREADS": threads}
                if gpus:
                    env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
                path = task_file(root, prefix, i, "log")
                path.parent.mkdir(parents=True, exist_ok=True)
                out = open(path, "ab")
                proc = subprocess.Popen([sys.executable, exper(root), "sweep", "--task", prefix, str(i)],
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                        cwd=root)
                running[i] = (proc, slot, out)
                changed = True
                device = f" on GPU {env['CUDA_VISIBLE_DEVICES']}" if gpus else ""
                _log(f"task {i} {plan['runs'][i]['tag']} seed {plan['runs'][i]['seed']}: "
                     f"{'continues' if what == 'con' else 'starts'}{device} (pid {proc.pid})")
        if changed:
            state["running"] = {str(i): proc.pid for i, (proc, _, _) in running.items()}
            _write_queue(root, prefix, state)
        if not running and (stopping or not todo):
            break
        time.sleep(0.2)
    state.update(state="stopped" if stopping else "ended", running={}, ended=now())
    _write_queue(root, prefix, state)
    add_known_runs(root, need_plan(root, prefix))
    counts = count_runs(root, need_plan(root, prefix))
    _log(f"queue {os.getpid()} {'stopped' if stopping else 'ended'}: {say_counts(counts)}")
    return 0


def add_known_runs(root, plan):
    found = []
    for i, entry in enumerate(plan["runs"]):
        id_, record = find_record(root, plan, i)
        if record is not None and record.get("status") != "corrupt":
            found.append((entry["tag"], id_))
    if found:
        add_runs(root, plan["prefix"], found)


def spawn_queue(root, prefix, jobs):
    """Start the queue in a session of its own, its output in the sweep's log: a closed terminal, a
    logout or Ctrl-C at the prompt leave it running."""
    log = log_path(root, prefix)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        argv = [sys.executable, exper(root), "sweep", "--queue", prefix, "--jobs", str(jobs)]
        pid = os.posix_spawn(sys.executable, argv, {**os.environ, "EXPER_ROOT": str(root)}, setsid=True,
                             file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                           (os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)])
    finally:
        os.close(fd)
    deadline = time.monotonic() + 10  # until it holds its lock: `sweep --status` right after sees it running
    while time.monotonic() < deadline and not queue_running(root, prefix):
        if os.waitpid(pid, os.WNOHANG)[0]:  # it ended already (nothing to do, or another queue has the sweep)
            break
        time.sleep(0.02)
    return pid
