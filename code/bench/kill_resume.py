"""kill -9 a training run at random instants, `con` it, and check it ends exactly as an uninterrupted run.

Usage: python3 code/bench/kill_resume.py [--quick] [--trials N] [--seed S]

In a temporary project made from this template (3 epochs of the example, a checkpoint every
7 steps, a metrics.csv row every 5) it times one uninterrupted `run ref -f`, then for each
trial starts `run kill -f` and, once its first checkpoint is written (before it there is
nothing to continue: con refuses, `rerun` starts afresh), sends SIGKILL at a random instant of
the rest of the run: to the whole process group (launcher and training, as a lost terminal or
an OOM killer would) or to the training process alone. Then `con`, which is itself killed at a
random instant (often while it starts) with probability 1/2, up to twice, before a last `con`
runs to the end. A run that ends before its kill is not counted, and shortens the window
(the shared machine got faster). A trial is exact when the run finished with the reference's
weights_sha256, every final metric, and a byte-identical metrics.csv (each epoch and step
once). Prints one line per trial and `<exact>/<trials> resumed exactly`; exits 1 unless all were.
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CODE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CODE))

from utils.procs import command_line
from utils.runs import read_statistic

CONFIG = {"epochs": 3, "checkpoint_every_steps": 7, "log_every_steps": 5, "progress_bar": False,
          "keep_checkpoints": 2}


def make_project(folder):
    """This template's code/ in a new git repository, with CONFIG's values in its config.py."""
    shutil.copytree(CODE, folder / "code", ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    shutil.copy(CODE.parent / ".gitignore", folder / ".gitignore")
    path = folder / "code" / "config.py"
    lines = path.read_text().splitlines()
    for name, value in CONFIG.items():
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{name} = "))
        lines[at] = f"{name} = {value!r}  # set by kill_resume.py"
    path.write_text("\n".join(lines) + "\n")
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "bench"]):
        subprocess.run(["git", "-C", str(folder), *argv], check=True, capture_output=True)
    return folder


def start(project, *argv):
    """An exper command in its own process group, as a terminal would start it."""
    return subprocess.Popen([sys.executable, str(project / "code" / "utils" / "exper.py"), *argv], cwd=project,
                            env={**os.environ, "EXPER_ROOT": str(project)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def gone(pid):
    return not command_line(pid)  # None when gone; a zombie has no command line left


def wait_until(predicate, deadline):
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.005)


def kill(proc, how):
    """SIGKILL the command (the launcher's process group and the training process, which has a session
    of its own), or the training process alone when it has started; wait until every process of the
    command is gone. Returns what was killed."""
    os.killpg(proc.pid, signal.SIGSTOP)  # frozen: the launcher starts nothing between the listing and the kill
    try:
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            children = [int(pid) for pid in f.read().split()]
    except OSError:
        children = []
    if how == "training" and children:
        os.kill(children[0], signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGCONT)  # the launcher lives on, to say what happened
    else:
        how = "group"
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=120)
    for pid in children:
        wait_until(lambda: gone(pid), time.monotonic() + 60)  # noqa: B023  (called within the loop)
    return how


def run_until(proc, at):
    """Let proc run until `at` seconds after its start; False when it ended first."""
    try:
        proc.wait(timeout=at)
        return False
    except subprocess.TimeoutExpired:
        return True


def until_first_checkpoint(run, proc):
    """Wait for the run's first checkpoint (epoch_last.pth appears with it); seconds waited."""
    begin, last = time.monotonic(), run / "checkpoint" / "epoch_last.pth"
    wait_until(lambda: last.exists() or proc.poll() is not None, begin + 600)
    return time.monotonic() - begin


def reference(project):
    """(seconds to the first checkpoint, seconds from it to the end) of an uninterrupted run."""
    proc = start(project, "run", "ref", "-f")
    first = until_first_checkpoint(project / "__result__" / "ref" / "0", proc)
    begin = time.monotonic()
    if proc.wait() != 0:
        raise SystemExit(f"the reference run failed: {proc.stderr.read()}")
    return first, time.monotonic() - begin


def trial(project, id_, rng, first, rest):
    """One killed run and its cons: (exact, what happened, seconds from its first checkpoint to
    its end when it finished before the kill, else None)."""
    run = project / "__result__" / "kill" / str(id_)
    at, how = rng.uniform(0, rest), rng.choice(["group", "training"])
    proc = start(project, "run", "kill", "-f")
    until_first_checkpoint(run, proc)
    begin = time.monotonic()
    if not run_until(proc, at):
        return None, f"finished {time.monotonic() - begin:.2f} s after its first checkpoint", time.monotonic() - begin
    story = [f"run killed {at:.2f} s after its first checkpoint ({kill(proc, how)})"]
    left = rest - at
    for _ in range(2):
        if rng.random() < 0.5:
            break
        # within con's start and what is left to do: often while it starts, sometimes near the end
        at, how = rng.uniform(0, first + left), rng.choice(["group", "training"])
        proc = start(project, "continue", f"kill/{id_}")
        if not run_until(proc, at):
            story.append(f"con ended before the kill at {at:.2f} s")
            break
        story.append(f"con killed at {at:.2f} s ({kill(proc, how)})")
    if read_statistic(run).get("status") != "finished":
        proc = start(project, "continue", f"kill/{id_}")
        if proc.wait() != 0:
            return False, "; ".join([*story, f"con failed: {proc.stderr.read().strip()[-300:]}"]), None
    return check(project, run), "; ".join(story), None


def check(project, run):
    ref = project / "__result__" / "ref" / "0"
    mine, theirs = read_statistic(run), read_statistic(ref)
    return (mine["status"] == "finished" and mine["weights_sha256"] == theirs["weights_sha256"]
            and mine["metrics"] == theirs["metrics"]
            and (run / "metrics.csv").read_bytes() == (ref / "metrics.csv").read_bytes())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 trials (CI: checks the bench runs)")
    p.add_argument("--trials", type=int, default=30, help="killed runs to resume (default 30)")
    p.add_argument("--seed", type=int, default=None, help="seed of the kill instants (default: fresh, printed)")
    a = p.parse_args(argv)
    trials = 3 if a.quick else a.trials
    seed = a.seed if a.seed is not None else random.randrange(2**31)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="exper-kill-") as tmp:
        project = make_project(Path(tmp))
        first, rest = reference(project)
        print(f"kill instants seeded {seed}; uninterrupted run: first checkpoint at {first:.2f} s, "
              f"then {rest:.2f} s to the end", flush=True)
        exact = done = id_ = 0
        while done < trials:
            result, story, took = trial(project, id_, rng, first, rest)
            id_ += 1
            if result is None:  # no kill happened: not a trial; the machine runs faster now
                print(f"  (kill/{id_ - 1}: {story}, before its kill; not counted)", flush=True)
                rest = took
                continue
            done += 1
            exact += result
            print(f"{done:3d} kill/{id_ - 1}: {story}: {'exact' if result else 'DIFFERENT'}", flush=True)
    print(f"{exact}/{trials} resumed exactly")
    return 0 if exact == trials else 1


if __name__ == "__main__":
    sys.exit(main())
