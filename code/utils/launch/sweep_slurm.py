"""A sweep as one SLURM job array: the batch script, and sbatch, squeue and scancel's views of its tasks.

Usage: submit(root, "lrs", plan, head, jobs=2, options=["--time=2:00:00"])   # sbatch --array=0-8%2
       slurm_tasks(plan)   # {task: (job, state)} of the tasks still pending or running; None: squeue is silent
       check_submission(root, "lrs", head, range(9), None, [])   # sbatch --test-only: refused now, not pending for ever

Each array task runs `exper.py sweep --task <prefix> $SLURM_ARRAY_TASK_ID` after code/sweep.sbatch
as HEAD holds it (its #SBATCH options and setup such as `module load`).
"""
import itertools
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from utils.atomic import write_text
from utils.cli import UsageError, shorten
from utils.launch import commands as c
from utils.launch import git as g
from utils.launch.sweep_plan import count_runs, exper, say_counts, sweep_dir, task_state, update_plan
from utils.launch.sweep_queue import queue_running
from utils.statistic.run_record import now

SBATCH_FILE = "code/sweep.sbatch"
_GONE = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
         "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED")  # squeue states of a task that no longer runs nor waits


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
             f'exec "${{EXPER_PYTHON:-python3}}" {shlex.quote(exper(root))} sweep --task {shlex.quote(prefix)} '
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


def check_submission(root, prefix, head, tasks, jobs, options):
    """sbatch --test-only of the array a new sweep will submit, before it makes any commit: a request
    that no node can meet is refused now, not kept pending for ever."""
    with tempfile.TemporaryDirectory(prefix="exper-sweep-") as tmp:
        text, _ = batch_script(root, prefix, head)
        Path(tmp, "sweep.sbatch").write_text(text)
        _sbatch(sbatch_argv(root, prefix, text, tasks, jobs, options, test_only=True), Path(tmp, "sweep.sbatch"), root)


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
        c.say(f"sweep {prefix}: nothing to submit ({say_counts(count_runs(root, plan))}{queued})")
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
        {"job": job, "tasks": tasks, "submitted": now(), "options": _options(options)}))
    c.say(f"sweep {prefix}: SLURM job {job}, {len(tasks)} array tasks ({_array(tasks, None)}); "
          f"`sweep --status {prefix}` shows them, `sweep --stop {prefix}` stops them")
    return 0
