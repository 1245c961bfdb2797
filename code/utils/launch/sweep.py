"""sweep: many configurations and seeds as tagged commits, run as a queue here or as a SLURM job array.

Usage: sweep <prefix> NAME=VALUES [NAME=VALUES ...] [-n K] [-f] [--jobs N] [--slurm [--sbatch OPTIONS]]
       sweep --status <prefix> | sweep --stop <prefix>

Every combination of the values is one commit whose parent is HEAD and whose only change is those
assignments in code/config.py, each tagged <prefix>-<name><value>-... (or <prefix>-<k>). Each
variant runs K times, recorded exactly as `run` records a run; with -f the seeds are code/seed,
code/seed + 1, ..., the same for every variant. The plan, the queue's log and each task's output
live in __statistic__/sweep/<prefix>/, and the runs form the list <prefix> (`table <prefix> -g`).
Running the same command again resumes the sweep. Internal forms: `sweep --queue <prefix>` is the
detached queue, `sweep --task <prefix> <i>` trains or continues the sweep's run i (a SLURM array task).
"""
import argparse
import ast
import fcntl
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from utils.atomic import locked, write_json, write_text
from utils.cli import UsageError, parser, project_root, shorten
from utils.launch import commands as c
from utils.launch import git as g
from utils.procs import command_line, stat_fields
from utils.runs import TAG_MAX, BadRun, check_tag, read_statistic, run_dir, run_ids, statistic_dir, status
from utils.statistic.lists import DEFAULT, FINISHED, add_runs, check_name, list_path, shown

PLAN_VERSION = 1
BUSY = 75  # a task's exit code when another process is at its run right now: try again later
SBATCH_FILE = "code/sweep.sbatch"
STOPPED = (130, 143)  # Ctrl-C, SIGTERM: the run stopped with a checkpoint
_GONE = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
         "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED")  # squeue states of a task that no longer runs nor waits
_SAFE = re.compile(r"[A-Za-z0-9._+-]+")
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


# --- where a sweep keeps its files
def sweep_dir(root, prefix):
    return statistic_dir(root) / "sweep" / prefix


def plan_path(root, prefix):
    return sweep_dir(root, prefix) / "plan.json"


def _queue_file(root, prefix):
    return sweep_dir(root, prefix) / "queue.json"


def _log_path(root, prefix):
    return sweep_dir(root, prefix) / "log"


def _task_file(root, prefix, i, suffix):
    return sweep_dir(root, prefix) / "tasks" / f"{i}.{suffix}"


def _exper(root):
    return str(Path(root) / "code" / "utils" / "exper.py")


def _now():
    from utils.statistic.run_record import now

    return now()


def task_command(prefix, i):
    """What each run of the sweep records as its command: the task that trains it (also how a run
    is found again when its id never reached the plan)."""
    return f"sweep {prefix} --task {i}"


# --- the arguments
def build_parser():
    p = parser("sweep", "Make one tagged commit per combination of config values (off HEAD, your tree untouched) "
                        "and train each K times, as a queue here (detached) or as a SLURM job array.")
    p.add_argument("prefix", metavar="<prefix>", help="starts every tag of the sweep; also the name of its list")
    p.add_argument("assignments", nargs="*", metavar="NAME=VALUES",
                   help="an assignment of code/config.py and a Python list of values, as in lr='[0.01, 0.1]'")
    p.add_argument("-n", "--runs", type=int, metavar="K", help="runs of each variant (default 1)")
    p.add_argument("-f", "--fix-seed", action="store_true",
                   help="the K seeds are code/seed, code/seed + 1, ..., the same for every variant (else fresh seeds)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="runs at a time: here, each on its own GPU when GPUs are visible, else on a share of the "
                        "cores (default 1); with --slurm, at most N array tasks at once (default: no limit)")
    p.add_argument("--slurm", action="store_true", help="submit the runs as one SLURM job array (sbatch)")
    p.add_argument("--sbatch", metavar="OPTIONS", action="append", default=[],
                   help=f"more sbatch options, as in --sbatch '--time=2:00:00 --gres=gpu:1' (after {SBATCH_FILE}'s)")
    p.add_argument("--status", action="store_true", help="show the sweep's progress: a row per run")
    p.add_argument("--stop", action="store_true", help="stop the sweep: each running run stops with a checkpoint")
    p.add_argument("--queue", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--task", action="store_true", help=argparse.SUPPRESS)
    return p


def _split_sbatch(argv):
    """Take out `--sbatch OPTIONS`: its value starts with '-', which argparse would read as an option."""
    rest, options, i = [], [], 0
    while i < len(argv):
        word = argv[i]
        if word == "--sbatch":
            if i + 1 == len(argv):
                raise UsageError("--sbatch needs the options, as in --sbatch '--time=2:00:00' (see `sweep -h`)")
            options.append(argv[i + 1])
            i += 2
            continue
        if word.startswith("--sbatch="):
            options.append(word[len("--sbatch="):])
        else:
            rest.append(word)
        i += 1
    return rest, options


def parse(argv):
    p = build_parser()
    rest, options = _split_sbatch(list(argv))
    for word in rest:  # as utils.cli.Parser.parse_args, which parse_intermixed_args does not go through
        if word == "--":
            break
        if word.startswith("-") and word != "-" and not _number(word) and not p._known(word.split("=", 1)[0]):
            raise UsageError(f"unknown option {shorten(word)!r} (see `sweep -h`)")
    a = p.parse_intermixed_args(rest)
    a.sbatch = options
    return a


def _number(word):
    try:
        float(word)
    except ValueError:
        return False
    return True


def check_prefix(prefix):
    try:
        check_tag(prefix)
        check_name(prefix)
    except UsageError as e:
        why = str(e).partition(": ")[2]
        raise UsageError(f"the prefix {shorten(prefix)!r} cannot start tag names: {why}") from None
    if prefix in (FINISHED, DEFAULT):
        raise UsageError(f"the prefix names the sweep's list, and {prefix!r} is a list the template keeps "
                         "itself; choose another prefix")
    return prefix


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def parse_axes(words):
    """[(name, [value, ...])] from NAME=VALUES words, VALUES a non-empty Python list literal."""
    axes = []
    for word in words:
        name, equals, text = word.partition("=")
        name = name.strip()
        if not equals or not name.isidentifier():
            raise UsageError(f"{shorten(word)!r} is not NAME=VALUES, as in lr='[0.01, 0.1]'")
        if name in (n for n, _ in axes):
            raise UsageError(f"{name} is given twice; give each name once, with all its values in one list")
        try:
            values = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            values = None
        if not isinstance(values, list) or not values:
            raise UsageError(f"{name}={shorten(text)!r}: VALUES must be a non-empty Python list literal, "
                             f"as in {name}='[0.01, 0.1]' (quoted for the shell)")
        if not all(_plain(v) for v in values):
            raise UsageError(f"{name}={shorten(text)!r}: each value must be plain data (numbers, text, True, False, "
                             "None, and tuples, lists and dicts of them), as config.py records it")
        texts = [repr(v) for v in values]
        twice = next((t for i, t in enumerate(texts) if t in texts[:i]), None)
        if twice is not None:
            raise UsageError(f"{name} lists {shorten(twice)} twice; give each value once")
        axes.append((name, values))
    return axes


def describe_axes(axes):
    return " ".join(f"{name}=[{', '.join(repr(v) for v in values)}]" for name, values in axes)


def describe_values(names, values):
    return " ".join(f"{name}={v!r}" for name, v in zip(names, values, strict=True))


# --- git, for commits made without touching the tree
def _git(root, *argv, input=None, env=None):
    try:
        out = subprocess.run(["git", "-C", str(root), *argv], capture_output=True, input=input,
                             env={**os.environ, **(env or {})})
    except FileNotFoundError:
        raise UsageError("git is not installed; sweep needs it") from None
    if out.returncode:
        said = "; ".join(line.strip() for line in out.stderr.decode(errors="replace").splitlines() if line.strip())
        raise g.GitError(f"git {argv[0]} failed: {said or f'exit code {out.returncode}'}")
    return out.stdout


def config_source(root, commit):
    out = subprocess.run(["git", "-C", str(root), "cat-file", "blob", f"{commit}:code/config.py"], capture_output=True)
    if out.returncode:
        raise UsageError("HEAD has no code/config.py: a sweep changes its assignments")
    return out.stdout


def assignments(source):
    """{name: ast node} of config.py's top-level `NAME = value` lines (the last of each name)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as e:
        where = f" (line {e.lineno})" if getattr(e, "lineno", None) else ""
        raise UsageError(f"code/config.py does not parse{where}: {getattr(e, 'msg', e)}; fix it and commit") from None
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found[node.target.id] = node
    return found


def rewrite(source, nodes, changes):
    """config.py's bytes with each named assignment's value replaced by repr(value): the whole value
    (over as many lines as it spans), nothing else, so each line's comment stays."""
    lines = _LINE.findall(source)
    for node, value in sorted(((nodes[name].value, value) for name, value in changes.items()),
                              key=lambda pair: pair[0].lineno, reverse=True):  # from the bottom: spans above hold
        first, last = node.lineno - 1, node.end_lineno - 1
        text = repr(value).encode("utf-8", errors="surrogateescape")
        lines[first:last + 1] = [lines[first][:node.col_offset] + text + lines[last][node.end_col_offset:]]
    return b"".join(lines)


def _value_text(value):
    """A value as a tag shows it (0.01, True, 16x32 for (16, 32)), or None where it cannot."""
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return value if _SAFE.fullmatch(value) else None
    if isinstance(value, (list, tuple)) and value:
        parts = [_value_text(v) for v in value]
        return None if None in parts else "x".join(parts)
    return None


def _tag_ok(root, tag):
    try:
        check_tag(tag)
    except UsageError:
        return False
    return len(tag) <= TAG_MAX and g.valid_tag_name(root, tag)


def tag_names(root, prefix, names, variants):
    """<prefix>-<name><value>-... for every variant; <prefix>-<k> for all of them when any such name
    would be invalid, too long or not unique."""
    tags = []
    for values in variants:
        texts = [_value_text(v) for v in values]
        parts = [None if text is None else f"{name}{text}" for name, text in zip(names, texts, strict=True)]
        tags.append(None if None in parts else "-".join([prefix, *parts]))
    if all(t and _tag_ok(root, t) for t in tags) and len(set(tags)) == len(tags):
        return tags
    return [f"{prefix}-{k}" for k in range(len(variants))]


def _same_variant(root, commit, head, source):
    """Whether an existing commit is this variant: HEAD's child with this config.py and nothing else changed."""
    parents = g.git(root, "rev-list", "--parents", "-n", "1", commit).split()[1:]
    if parents != [head]:
        return False
    changed = g.git(root, "diff", "--name-only", head, commit, "--").split("\n")
    if changed not in ([""], ["code/config.py"]):
        return False
    return config_source(root, commit) == source


def make_commit(root, head, source, message):
    """A commit off HEAD whose only change is code/config.py, made with a temporary index: no
    checkout, so HEAD, the branch, the index and the work tree stay as they are."""
    blob = _git(root, "hash-object", "-w", "--stdin", input=source).decode().strip()
    mode = _git(root, "ls-tree", head, "--", "code/config.py").decode().split()[0]
    with tempfile.TemporaryDirectory(prefix="exper-sweep-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        _git(root, "read-tree", head, env=env)
        _git(root, "update-index", "--cacheinfo", f"{mode},{blob},code/config.py", env=env)
        tree = _git(root, "write-tree", env=env).decode().strip()
    return _git(root, "commit-tree", tree, "-p", head, "-m", message).decode().strip()


def _make_tag(root, tag, commit, message):
    """Tag the commit (annotated); True when this call made the tag."""
    out = g.git(root, "tag", "-a", "-m", message, tag, commit, check=False)
    if not out.returncode:
        return True
    if g.tag_commit(root, tag) == commit:
        return False
    raise UsageError(f"could not create tag {tag!r}: {out.stderr.strip() or 'git tag failed'}")


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


def _note_run(root, prefix, i, **fields):
    def change(plan):
        plan["runs"][i].update(fields)

    update_plan(root, prefix, change)


def _axes_of(plan):
    return [(a["name"], [ast.literal_eval(v) for v in a["values"]]) for a in plan["axes"]]


def _differences(plan, axes, runs, fixed):
    asked = [{"name": n, "values": [repr(v) for v in values]} for n, values in axes]
    said = []
    if plan["axes"] != asked:
        said.append(f"{describe_axes(_axes_of(plan))} there, {describe_axes(axes)} here")
    if plan["runs_per_variant"] != runs:
        said.append(f"-n {plan['runs_per_variant']} there, -n {runs} here")
    if plan["fixed_seed"] != fixed:
        said.append(f"{'-f' if plan['fixed_seed'] else 'fresh seeds'} there, {'-f' if fixed else 'fresh seeds'} here")
    return said


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


def _lock(path):
    """An exclusive lock held for as long as the returned descriptor is open; None when another holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _held(path):
    """Whether some process holds the lock at path (it is free when there is no such file)."""
    if not path.exists():
        return False
    fd = _lock(path)
    if fd is None:
        return True
    os.close(fd)
    return False


def _elsewhere(record):
    host = (record.get("host") or {}).get("hostname")
    return bool(host) and host != socket.gethostname()


def task_state(root, plan, i, found=None, in_slurm=False):
    """What run i needs: 'done', 'failed' (crashed: not retried), 'busy' (a process here is at it),
    'elsewhere' (recorded as running on another machine), 'con' (interrupted or dead, with a
    checkpoint), 'new' (never began, or died before its first checkpoint: it starts afresh with the
    same seed). found: (id, record) already read, by the task that holds the task's lock itself."""
    if found is None and _held(_task_file(root, plan["prefix"], i, "lock")):
        return "busy"
    id_, record = find_record(root, plan, i) if found is None else found
    if record is None:
        return "new"
    state = record.get("status") if record.get("status") == "corrupt" else status(record)
    if state == "finished":
        return "done"
    if state in ("crashed", "corrupt"):
        return "failed"
    if state == "running" and not _elsewhere(record):
        return "busy"
    if state == "running" and not in_slurm:  # under SLURM the scheduler says that task is gone
        return "elsewhere"
    from utils.train.checkpoint import candidates  # no torch: only lists files

    if record.get("sessions") and candidates(run_dir(root, plan["runs"][i]["tag"], id_) / "checkpoint"):
        return "con"
    return "new"


# --- --task: train or continue one run of the sweep (what the queue's jobs and SLURM's array tasks run)
def task_main(root, prefix, index):
    plan = need_plan(root, prefix)
    if not index.isdigit() or int(index) >= len(plan["runs"]):
        raise UsageError(f"sweep {prefix} has tasks 0 to {len(plan['runs']) - 1}, not {shorten(index)!r}")
    i = int(index)
    entry = plan["runs"][i]
    tag = entry["tag"]
    lock = _lock(_task_file(root, prefix, i, "lock"))  # noqa: F841  (held while this process lives)
    if lock is None:
        c.say(f"error: task {i} of sweep {prefix} ({tag}) is being run by another process right now", err=True)
        return BUSY
    in_slurm = bool(os.environ.get("SLURM_JOB_ID"))
    _note_run(root, prefix, i, pid=os.getpid(), host=socket.gethostname(), job=os.environ.get("SLURM_JOB_ID"),
              exit=None, started=_now())
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
            code = c.continue_main([f"{tag}/{id_}", *(["--dead"] if _elsewhere(record) else [])])
        else:
            if record is not None:  # it never got to a checkpoint: its seed starts afresh
                c.say(f"note: {tag}/{id_} ended without a checkpoint to continue from; training it again "
                      "with the same seed", err=True)
                c.discard(root, tag, id_, made_tag=False)
            code = c.train_tag(root, tag, entry["seed"], plan["fixed_seed"], task_command(prefix, i),
                               started=lambda new: _note_run(root, prefix, i, id=new))
            id_, record = find_record(root, need_plan(root, prefix), i)
    except UsageError as e:
        c.say(f"error: {e}", err=True)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    finally:
        _note_run(root, prefix, i, exit=code, ended=_now(), **({"id": id_} if id_ is not None else {}))
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
    return _held(_queue_lock(root, prefix))


def queue_main(root, prefix, jobs):
    """Run the sweep's unfinished tasks, `jobs` at a time, until none is left or --stop says stop."""
    os.chdir(root)
    lock = _lock(_queue_lock(root, prefix))  # noqa: F841  (one queue per sweep, held while it lives)
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
    state = {"pid": os.getpid(), "jobs": jobs, "started": _now(), "state": "running", "running": {}}
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
                path = _task_file(root, prefix, i, "log")
                path.parent.mkdir(parents=True, exist_ok=True)
                out = open(path, "ab")
                proc = subprocess.Popen([sys.executable, _exper(root), "sweep", "--task", prefix, str(i)],
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
    state.update(state="stopped" if stopping else "ended", running={}, ended=_now())
    _write_queue(root, prefix, state)
    _add_known_runs(root, need_plan(root, prefix))
    counts = _counts(root, need_plan(root, prefix))
    _log(f"queue {os.getpid()} {'stopped' if stopping else 'ended'}: {_say_counts(counts)}")
    return 0


def _add_known_runs(root, plan):
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
    log = _log_path(root, prefix)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        argv = [sys.executable, _exper(root), "sweep", "--queue", prefix, "--jobs", str(jobs)]
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


# --- SLURM
def _sbatch_names(text):
    """The option names a batch script's #SBATCH lines set (sbatch reads them up to the first command)."""
    names = set()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#SBATCH"):
            try:
                words = shlex.split(stripped[len("#SBATCH"):], comments=True)
            except ValueError:
                continue
            names |= {w.split("=", 1)[0] for w in words if w.startswith("-")}
        elif stripped and not stripped.startswith("#"):
            break
    return names


def _options(text):
    words = []
    for option in text:
        try:
            words += shlex.split(option)
        except ValueError as e:
            raise UsageError(f"--sbatch {shorten(option)!r}: {e}") from None
    return words


def batch_script(root, prefix, head):
    """The batch script: code/sweep.sbatch as HEAD holds it (its #SBATCH options and any setup), then
    the line that trains the array task's run, exec'd so that a signal for the batch script (scancel
    --batch, --signal=B:TERM@<s>) reaches sweep's launcher, which passes it on to the run."""
    head_text = g.show(root, head, SBATCH_FILE)
    text = head_text if head_text is not None else "#!/bin/bash\n"
    if not text.startswith("#!"):
        text = "#!/bin/bash\n" + text
    if not text.endswith("\n"):
        text += "\n"
    quoted = shlex.quote(str(root))
    text += (f"# --- added by `sweep {prefix} --slurm`: array task $SLURM_ARRAY_TASK_ID trains or continues that run\n"
             f"cd {quoted} || exit 1\n"
             f"export EXPER_ROOT={quoted}\n"
             f'exec "${{EXPER_PYTHON:-python3}}" {shlex.quote(_exper(root))} sweep --task {shlex.quote(prefix)} '
             '"$SLURM_ARRAY_TASK_ID"\n')
    return text, head_text is not None


def _array(tasks, jobs):
    """sbatch's --array value: ranges of task ids, and %N for at most N at once."""
    parts = []
    for _, group in itertools.groupby(enumerate(sorted(tasks)), lambda pair: pair[1] - pair[0]):
        ids = [t for _, t in group]
        parts.append(f"{ids[0]}-{ids[-1]}" if len(ids) > 1 else str(ids[0]))
    return ",".join(parts) + (f"%{jobs}" if jobs else "")


def sbatch_argv(root, prefix, script_text, tasks, jobs, options, test_only=False):
    named = _sbatch_names(script_text)
    argv = ["sbatch", "--parsable", f"--array={_array(tasks, jobs)}", f"--chdir={root}"]
    if not named & {"--job-name", "-J"}:
        argv.append(f"--job-name={prefix}")
    if not named & {"--output", "-o"}:
        argv.append(f"--output={sweep_dir(root, prefix) / 'slurm-%A_%a.out'}")
    return argv + (["--test-only"] if test_only else []) + _options(options)


def _sbatch(argv, script, root):
    out = subprocess.run([*argv, str(script)], capture_output=True, text=True, cwd=root)
    if out.returncode:
        said = "; ".join(line.strip() for line in out.stderr.splitlines() if line.strip())
        raise UsageError(f"sbatch refused the sweep: {shorten(said or f'exit code {out.returncode}', 300)}")
    return out.stdout.strip().split(";")[0]


def slurm_tasks(plan):
    """{task: (job, SLURM state)} of the sweep's array tasks still pending or running (squeue), or None
    when squeue cannot say."""
    jobs = [str(j["job"]) for j in plan.get("slurm") or []]
    if not jobs:
        return {}
    if not shutil.which("squeue"):
        return None
    out = subprocess.run(["squeue", "-h", "-r", "-j", ",".join(jobs), "-o", "%F|%K|%T"], capture_output=True,
                         text=True)
    if out.returncode:
        return {} if "Invalid job id" in out.stderr else None  # every job long gone from the queue
    found = {}
    for line in out.stdout.splitlines():
        job, _, rest = line.partition("|")
        task, _, state = rest.partition("|")
        if job in jobs and task.isdigit() and state not in _GONE:
            found[int(task)] = (job, state)
    return found


def submit(root, prefix, plan, head, jobs, options):
    if queue_running(root, prefix):
        raise UsageError(f"sweep {prefix} runs in a queue on this machine; `sweep --stop {prefix}` first")
    active = slurm_tasks(plan)
    if active is None:
        raise UsageError("squeue does not answer, so the sweep's queued tasks are unknown; try again later")
    tasks = [i for i in range(len(plan["runs"])) if i not in active and task_state(root, plan, i, in_slurm=True)
             in ("new", "con")]
    if not tasks:
        queued = f"; {len(active)} queued or running in SLURM" if active else ""
        c.say(f"sweep {prefix}: nothing to submit ({_say_counts(_counts(root, plan))}{queued})")
        return 0
    text, _ = batch_script(root, prefix, head)
    script = sweep_dir(root, prefix) / "sweep.sbatch"
    trying = script.with_name(f".sweep.sbatch.{os.getpid()}")  # sbatch copies it; kept only once submitted
    write_text(trying, text)
    try:
        # sbatch takes, and keeps pending for ever, a request that no node can meet: --test-only says so
        _sbatch(sbatch_argv(root, prefix, text, tasks, jobs, options, test_only=True), trying, root)
        job = _sbatch(sbatch_argv(root, prefix, text, tasks, jobs, options), trying, root)
        os.replace(trying, script)
    finally:
        if trying.exists():
            trying.unlink()
    update_plan(root, prefix, lambda p: p.setdefault("slurm", []).append(
        {"job": job, "tasks": tasks, "submitted": _now(), "options": _options(options)}))
    c.say(f"sweep {prefix}: SLURM job {job}, {len(tasks)} array tasks ({_array(tasks, None)}); "
          f"`sweep --status {prefix}` shows them, `sweep --stop {prefix}` stops them")
    return 0


# --- --status and --stop
def _row_status(root, plan, i, active, queue_pids):
    """(shown status, counted as) of run i."""
    entry = plan["runs"][i]
    id_, record = find_record(root, plan, i)
    if record is not None:
        state = record.get("status") if record.get("status") == "corrupt" else status(record)
        if state == "running" and _elsewhere(record) and plan.get("slurm") and i not in (active or {}) \
                and active is not None:
            state = "dead"  # its task is gone from SLURM's queue, and the run never said it ended
        counted = {"finished": "done", "crashed": "failed", "corrupt": "failed"}.get(state, state)
        return id_, state, counted if counted in ORDER else "failed"
    if i in (active or {}):
        state = active[i][1]
        return None, state.lower(), "running" if state == "RUNNING" else "waiting"
    if i in queue_pids or _held(_task_file(root, plan["prefix"], i, "lock")):
        return None, "starting", "running"
    if entry.get("exit") not in (None, 0, BUSY, *STOPPED):
        return None, f"failed (exit {entry['exit']})", "failed"
    return None, "waiting", "waiting"


ORDER = ("done", "running", "failed", "interrupted", "dead", "waiting")


def _counts(root, plan, active=None, queue_pids=()):
    counts = dict.fromkeys(ORDER, 0)
    for i in range(len(plan["runs"])):
        counts[_row_status(root, plan, i, active, queue_pids)[2]] += 1
    return counts


def _say_counts(counts):
    shown_ = [f"{n} {name}" for name, n in counts.items() if n or name in ("done", "running", "failed", "waiting")]
    return ", ".join(shown_)


def status_main(root, prefix):
    from tabulate import tabulate

    plan = need_plan(root, prefix)
    variants, per = len(plan["variants"]), plan["runs_per_variant"]
    print(f"sweep {prefix}: {variants} variant{'s' * (variants != 1)} x {per} seed{'s' * (per != 1)} "
          f"({'fixed: -f' if plan['fixed_seed'] else 'fresh'}) = {len(plan['runs'])} runs, "
          f"off {plan['base'][:10]}: {describe_axes(_axes_of(plan))}")
    queue, pids = read_queue(root, prefix), set()
    if queue_running(root, prefix):
        pids = {int(i) for i in queue.get("running") or {}}
        print(f"queue: running (pid {queue.get('pid')}, {queue.get('jobs')} at a time); "
              f"log {shown(root, _log_path(root, prefix))}")
    elif queue.get("state") == "running":
        print(f"queue: gone (pid {queue.get('pid')} ended without a word: killed?); the same sweep command "
              f"resumes the sweep; log {shown(root, _log_path(root, prefix))}")
    elif queue:
        print(f"queue: not running ({queue.get('state')} {str(queue.get('ended') or '')[:19].replace('T', ' ')}); "
              f"log {shown(root, _log_path(root, prefix))}")
    active = slurm_tasks(plan)
    if plan.get("slurm"):
        jobs = ", ".join(str(j["job"]) for j in plan["slurm"])
        said = "squeue does not answer" if active is None else f"{len(active)} tasks queued or running"
        print(f"slurm: job{'s' * (len(plan['slurm']) > 1)} {jobs}; {said}")
    rows, counts = [], dict.fromkeys(ORDER, 0)
    for i, entry in enumerate(plan["runs"]):
        id_, state, counted = _row_status(root, plan, i, active, pids)
        counts[counted] += 1
        rows.append([i, entry["tag"], entry["seed"], "" if id_ is None else id_, state])
    print(f"{len(rows)} runs: {_say_counts(counts)}")
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
    fields = stat_fields(pid)
    line = command_line(pid)
    return bool(fields) and fields[0] != "Z" and line is not None and f" --task {prefix} {i} " in f"{line} "


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
        c.say(f"sweep {prefix}: nothing is running ({_say_counts(_counts(root, plan, active))})")
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
    c.say(f"sweep {prefix}: stopped ({_say_counts(_counts(root, plan, slurm_tasks(plan)))}); "
          "the same sweep command continues it")
    return 0


# --- sweep <prefix> NAME=VALUES ...: check everything, make the commits and tags, plan, run
def create(root, prefix, axes, runs, fixed, slurm, jobs, options):
    """Check every variant as `run` would, then make its commit and tag; return the plan (written)."""
    head = g.head(root)
    c.require_clean(root)
    if list_path(root, prefix).exists():
        raise UsageError(f"a list named {prefix!r} exists already ({shown(root, list_path(root, prefix))}); a sweep's "
                         "runs form the list of its prefix: choose another prefix")
    source = config_source(root, head)
    nodes = assignments(source)
    for name, _ in axes:
        if name not in nodes:
            raise UsageError(f"code/config.py has no assignment {name!r} (a `{name} = ...` line at the top level); "
                             f"its assignments: {shorten(', '.join(nodes), 400)}")
    names = [name for name, _ in axes]
    variants = list(itertools.product(*(values for _, values in axes)))
    sources = [rewrite(source, nodes, dict(zip(names, values, strict=True))) for values in variants]
    tags = tag_names(root, prefix, names, variants)
    commits = []
    for tag, new in zip(tags, sources, strict=True):
        c.checked_tag(root, tag)
        marked = g.tag_commit(root, tag)
        if marked and not _same_variant(root, marked, head, new):
            raise UsageError(f"tag {tag!r} already marks another commit ({marked[:10]}); choose another prefix")
        commits.append(marked)
    seeds = None
    if fixed:
        base_seed = c.read_seed(g.show(root, head, "code/seed"), "code/seed")
        seeds = [(base_seed + k) % 2**63 for k in range(runs)]
    with c.commit_code(root, head) as code_dir:
        sys.dont_write_bytecode = True  # each variant's config.py is read fresh, never from a cached .pyc
        for values, new in zip(variants, sources, strict=True):
            (code_dir / "config.py").write_bytes(new)
            shutil.rmtree(code_dir / "__pycache__", ignore_errors=True)
            try:
                config = c.load_config(code_dir)
            except UsageError as e:
                raise UsageError(f"with {describe_values(names, values)}: {e}") from None
            for name, value in zip(names, values, strict=True):
                got = getattr(config, name, None)
                if repr(got) != repr(value):
                    raise UsageError(f"with {name}={value!r}, code/config.py ends with {name} = {shorten(repr(got))}: "
                                     f"something after line {nodes[name].lineno} sets it again")
    if slurm:
        with tempfile.TemporaryDirectory(prefix="exper-sweep-") as tmp:
            text, _ = batch_script(root, prefix, head)
            Path(tmp, "sweep.sbatch").write_text(text)
            _sbatch(sbatch_argv(root, prefix, text, range(len(variants) * runs), jobs, options, test_only=True),
                    Path(tmp, "sweep.sbatch"), root)
    made = []
    try:
        for k, (tag, values, new) in enumerate(zip(tags, variants, sources, strict=True)):
            if commits[k] is None:
                message = f"sweep {prefix}: {describe_values(names, values)}"
                commits[k] = make_commit(root, head, new, message)
                if _make_tag(root, tag, commits[k], f"exper sweep {prefix}: {describe_values(names, values)}"):
                    made.append(tag)
        plan = {
            "version": PLAN_VERSION, "prefix": prefix, "base": head, "created": _now(),
            "axes": [{"name": n, "values": [repr(v) for v in values]} for n, values in axes],
            "runs_per_variant": runs, "fixed_seed": fixed, "seeds": seeds,
            "variants": [{"tag": t, "commit": cm, "values": {n: repr(v) for n, v in zip(names, values, strict=True)}}
                         for t, cm, values in zip(tags, commits, variants, strict=True)],
            # seed k of every variant before seed k + 1 of any: the first runs already compare the variants
            "runs": [{"variant": v, "k": k, "tag": tags[v], "seed": seeds[k] if fixed else c.fresh_seed(), "id": None}
                     for k in range(runs) for v in range(len(variants))],
            "slurm": [],
        }
        sweep_dir(root, prefix).mkdir(parents=True, exist_ok=True)
        write_json(plan_path(root, prefix), plan)
    except BaseException:
        for tag in made:
            g.git(root, "tag", "-d", tag, check=False)
        raise
    return plan


def resume(root, plan, axes, runs, fixed):
    prefix = plan["prefix"]
    if axes:
        differences = _differences(plan, axes, runs, fixed)
        if differences:
            raise UsageError(f"sweep {prefix!r} exists with other settings ({'; '.join(differences)}); repeat its "
                             "own command to resume it (`sweep --status " + prefix + "` shows it), or choose "
                             "another prefix")
    head = g.head(root)
    for variant in plan["variants"]:
        marked = g.tag_commit(root, variant["tag"])
        if marked != variant["commit"]:
            now = f"now marks {marked[:10]}" if marked else "is gone"
            raise UsageError(f"tag {variant['tag']!r} of sweep {prefix} {now}, not the sweep's commit "
                             f"{variant['commit'][:10]}; restore it (git tag -f -a {variant['tag']} "
                             f"{variant['commit'][:10]}) to resume the sweep")
    if head != plan["base"]:
        c.say(f"note: sweep {prefix} was made off {plan['base'][:10]} (HEAD is now {head[:10]}); it resumes as made",
              err=True)
    return head


def sweep_main(root, a):
    prefix = check_prefix(a.prefix)
    runs = 1 if a.runs is None else a.runs
    if runs < 1:
        raise UsageError(f"-n must be 1 or more (runs of each variant), not {runs}")
    if a.jobs is not None and a.jobs < 1:
        raise UsageError(f"--jobs must be 1 or more (runs at a time), not {a.jobs}")
    axes = parse_axes(a.assignments)
    if a.sbatch and not a.slurm:
        raise UsageError("--sbatch goes with --slurm")
    if a.slurm and not shutil.which("sbatch"):
        raise UsageError("--slurm needs SLURM's sbatch, which is not on PATH here (run the sweep on the "
                         "cluster's login node, or without --slurm)")
    head = g.head(root)
    plan = read_plan(root, prefix)
    if plan is None:
        if not axes:
            raise UsageError(f"no sweep {prefix!r} yet: give its NAME=VALUES, as in `sweep {prefix} lr='[0.01, 0.1]'`")
        plan = create(root, prefix, axes, runs, a.fix_seed, a.slurm, a.jobs, a.sbatch)
        _say_made(root, plan)
    else:
        if not axes and (a.runs is not None or a.fix_seed):
            raise UsageError(f"-n and -f go with NAME=VALUES; `sweep {prefix}` alone resumes the sweep as made")
        head = resume(root, plan, axes, runs, a.fix_seed)
        _add_known_runs(root, plan)
    if a.slurm:
        return submit(root, prefix, plan, head, a.jobs, a.sbatch)
    return start_local(root, plan, a.jobs or read_queue(root, prefix).get("jobs") or 1)  # else as it last ran


def _say_made(root, plan):
    per, variants = plan["runs_per_variant"], len(plan["variants"])
    c.say(f"sweep {plan['prefix']}: {variants} commits off {plan['base'][:10]}, tagged:")
    for variant in plan["variants"]:
        values = " ".join(f"{n}={v}" for n, v in variant["values"].items())
        c.say(f"  {variant['tag']}  {variant['commit'][:10]}  {values}")
    seeds = f"seeds {', '.join(map(str, plan['seeds']))}" if plan["fixed_seed"] else "a fresh seed each"
    c.say(f"{per} run{'s' * (per != 1)} of each ({seeds}): {len(plan['runs'])} runs")


def start_local(root, plan, jobs):
    prefix = plan["prefix"]
    active = slurm_tasks(plan)
    if active:
        raise UsageError(f"sweep {prefix} has {len(active)} tasks queued or running in SLURM; "
                         f"`sweep --stop {prefix}` first, or resubmit with --slurm")
    if queue_running(root, prefix):
        queue = read_queue(root, prefix)
        c.say(f"sweep {prefix} is running already (queue pid {queue.get('pid')}); `sweep --status {prefix}` "
              "shows it")
        return 0
    left = [i for i in range(len(plan["runs"])) if task_state(root, plan, i) in ("new", "con", "busy")]
    if not left:
        c.say(f"sweep {prefix}: nothing left to run ({_say_counts(_counts(root, plan))}); `table {prefix} -g` "
              "compares the runs")
        return 0
    pid = spawn_queue(root, prefix, jobs)
    c.say(f"sweep {prefix}: {len(left)} of {len(plan['runs'])} runs to go, {jobs} at a time, in the background "
          f"(queue pid {pid}, log {shown(root, _log_path(root, prefix))}); `sweep --status {prefix}` shows "
          f"progress, `sweep --stop {prefix}` stops it, `table {prefix} -g` compares the runs")
    return 0


def main(argv):
    a = parse(argv)
    modes = [m for m in ("status", "stop", "queue", "task") if getattr(a, m)]
    if len(modes) > 1:
        raise UsageError(f"--{modes[0]} and --{modes[1]} do not go together")
    root = project_root()
    if modes:
        extra = a.assignments[1:] if modes[0] == "task" else a.assignments
        if extra or a.runs is not None or a.fix_seed or a.slurm or a.sbatch or (a.jobs and modes[0] != "queue"):
            raise UsageError(f"sweep --{modes[0]} takes the prefix alone (see `sweep -h`)")
        check_prefix(a.prefix)
        if modes[0] == "status":
            return status_main(root, a.prefix)
        if modes[0] == "stop":
            return stop_main(root, a.prefix)
        if modes[0] == "queue":
            return queue_main(root, a.prefix, a.jobs or 1)
        if not a.assignments:
            raise UsageError("sweep --task needs <prefix> <index>")
        return task_main(root, a.prefix, a.assignments[0])
    return sweep_main(root, a)
