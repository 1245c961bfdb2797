"""sweep: variants as tagged commits off HEAD, K seeds each, run by a detached queue here or as a job
array on a real one-node SLURM cluster (tests/slurm.py). Real git, real trainings of the tests' tiny
research, through the real shell functions.

Usage: python3 -m pytest code/tests/test_sweep.py -q
"""
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import slurm

from conftest import commit, descendants, git, make_project, refused, sh, statistic, wait_for
from utils.atomic import held
from utils.launch import sweep as sw
from utils.launch import sweep_slurm as sl

GRID = "sweep grid lr_head='[0.01, 0.02]' width='[16, 32]' -n 2 -f --jobs 2"
SEED = 20201127  # code/seed of the template

slurm_env = pytest.fixture(scope="module")(slurm.cluster_fixture)


def plan(project, prefix):
    return json.loads((Path(project) / "__statistic__" / "sweep" / prefix / "plan.json").read_text())


def records(project, prefix):
    """The statistic.json of each run of the sweep, in the plan's order (None for a run not started)."""
    return [None if run.get("id") is None else statistic(project, run["tag"], run["id"])
            for run in plan(project, prefix)["runs"]]


def queue_ended(project, prefix):
    """Whether the sweep's queue has come and gone (it holds queue.lock while it lives)."""
    path = Path(project) / "__statistic__" / "sweep" / prefix / "queue.lock"
    return path.exists() and not held(path)


def training(project, prefix, i, sessions=1, checkpoint=None):
    """Whether run i of the sweep is training in its `sessions`th session (with that checkpoint written)."""
    run = plan(project, prefix)["runs"][i]
    if run.get("id") is None:
        return False
    folder = Path(project) / "__result__" / run["tag"] / str(run["id"])
    try:
        record = json.loads((folder / "statistic.json").read_text())
    except (OSError, ValueError):
        return False
    return (record["status"] == "running" and len(record["sessions"]) == sessions
            and (folder / "metrics.csv").exists() and (checkpoint is None or (folder / checkpoint).exists()))


def reference(project, lr_head, seed):
    """The grid's run of this lr_head (width 32, as HEAD has it) and seed: what an uninterrupted run gives."""
    tag = f"grid-lr_head{lr_head}-width32"
    return next(statistic(project, tag, run["id"]) for run in plan(project, "grid")["runs"]
                if run["tag"] == tag and run["seed"] == seed)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A project after GRID: 2 x 2 variants, 2 fixed seeds each, 2 at a time, on the 'GPUs' 3 and 5."""
    project = make_project(tmp_path_factory.mktemp("sweep") / "project")
    before = {"head": git(project, "rev-parse", "HEAD"), "branch": git(project, "symbolic-ref", "HEAD"),
              "status": git(project, "status", "--porcelain", "--untracked-files=all"),
              "index": git(project, "ls-files", "--stage")}
    result = sh(project, GRID, env={"CUDA_VISIBLE_DEVICES": "3,5"})
    assert result.returncode == 0, result.stderr
    running = sh(project, "sweep --status grid").stdout  # the command has returned; the queue goes on
    queue = json.loads((project / "__statistic__" / "sweep" / "grid" / "queue.json").read_text())["pid"]
    assert os.getsid(queue) == queue  # a session of its own: a closed terminal's SIGHUP never reaches it
    wait_for(lambda: queue_ended(project, "grid"), timeout=300, every=0.2)
    return project, before, result, running


@pytest.mark.slow
def test_grid_makes_tagged_commits_off_head_and_runs_them_two_at_a_time(grid):
    project, before, result, running = grid
    assert "8 of 8 runs to go, 2 at a time" in result.stdout and re.search(r"queue: running \(pid \d+", running)
    # HEAD, the branch, the index and the work tree are as they were; no worktree was left
    assert git(project, "rev-parse", "HEAD") == before["head"]
    assert git(project, "symbolic-ref", "HEAD") == before["branch"]
    assert git(project, "status", "--porcelain", "--untracked-files=all") == before["status"] == ""
    assert git(project, "ls-files", "--stage") == before["index"]
    assert git(project, "worktree", "list").count("\n") == 0

    tags = git(project, "tag").split()
    assert tags == ["grid-lr_head0.01-width16", "grid-lr_head0.01-width32", "grid-lr_head0.02-width16",
                    "grid-lr_head0.02-width32"]
    lines = {"lr_head": "lr_head = {}  # ... Adam for the head ...",
             "width": "width = {}  # the encoder's hidden width"}
    for tag in tags:
        lr_head, width = re.fullmatch(r"grid-lr_head([\d.]+)-width(\d+)", tag).groups()
        assert git(project, "cat-file", "-t", tag) == "tag"  # annotated
        assert git(project, "rev-parse", f"{tag}^{{commit}}^") == before["head"]  # its parent is HEAD
        assert git(project, "log", "-1", "--format=%s", tag) == f"sweep grid: lr_head={lr_head} width={width}"
        wanted = [lines[n].format(v) for n, v, head in (("width", width, "32"), ("lr_head", lr_head, "0.01"))
                  if v != head]  # HEAD has width 32 and lr_head 0.01: that variant's tree is HEAD's
        assert git(project, "diff", "--name-only", before["head"], tag) == ("code/config.py" if wanted else "")
        diff = git(project, "diff", "-U0", before["head"], tag).splitlines()
        added = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
        assert sorted(added) == sorted(wanted)  # only those values changed; each line keeps its comment

    p = plan(project, "grid")
    assert p["seeds"] == [SEED, SEED + 1] and len(p["runs"]) == 8
    runs = records(project, "grid")
    assert all(r["status"] == "finished" and r["fixed_seed"] is True for r in runs)
    for tag in tags:  # every variant has the same two seeds
        assert sorted(r["seed"] for r in runs if r["tag"] == tag) == [SEED, SEED + 1]
        ids = [r["id"] for r in runs if r["tag"] == tag]
        assert sorted(ids) == [0, 1]
    for i, (run, r) in enumerate(zip(p["runs"], runs, strict=True)):
        variant = p["variants"][run["variant"]]
        assert r["commit"] == variant["commit"] and r["command"] == f"sweep grid --task {i}"
        assert r["hyperparameters"]["width"] == int(variant["values"]["width"])
        assert r["hyperparameters"]["lr_head"] == float(variant["values"]["lr_head"])
        assert r["host"]["visible_devices"] in ("3", "5") and r["host"]["threads"] == 1  # a GPU each, 1 core each
    # two at a time: never more than two sessions overlap, and two did, each on its own GPU
    edges = sorted([(s["started"], 1) for r in runs for s in r["sessions"]]
                   + [(s["ended"], -1) for r in runs for s in r["sessions"]])
    depth = peak = 0
    for _, step in edges:
        depth += step
        peak = max(peak, depth)
    assert peak == 2
    for a, b in itertools.combinations(runs, 2):
        if a["started"] < b["ended"] and b["started"] < a["ended"]:
            assert a["host"]["visible_devices"] != b["host"]["visible_devices"]

    listed = (project / "__statistic__" / "exper-list" / "grid.txt").read_text().split()
    assert sorted(listed) == sorted(f"{r['tag']}/{r['id']}" for r in runs)
    table = sh(project, "table grid -g")
    assert table.returncode == 0, table.stderr
    assert sorted(re.findall(r"^(grid-\S+)\s+2\s", table.stdout, re.M)) == tags  # one row per variant, n = 2
    status = sh(project, "sweep --status grid").stdout
    assert "8 runs: 8 done, 0 running, 0 failed, 0 waiting" in status and "queue: not running" in status
    assert len(re.findall(r"^\d+\s+grid-\S+\s+2020112[78]\s+[01]\s+finished$", status, re.M)) == 8
    figure = sh(project, "plot val/mse -l grid")
    assert figure.returncode == 0 and Path(project, figure.stdout.strip()).is_file(), figure.stderr

    log = (project / "__statistic__" / "sweep" / "grid" / "log").read_text()
    assert "2 at a time, one GPU each of 3,5" in log and log.count(": finished") == 8

    again = sh(project, GRID)  # the same command: nothing is run twice
    assert again.returncode == 0 and "nothing left to run (8 done" in again.stdout, again.stderr
    assert git(project, "tag").split() == tags
    assert [r["id"] for r in records(project, "grid")] == [r["id"] for r in runs]

    again = sh(project, "rerun grid-lr_head0.02-width16/1")  # a sweep's run is a run like any other
    assert again.returncode == 0 and "reproduced grid-lr_head0.02-width16/1 exactly" in again.stdout, again.stdout

    complete = sh(project, "exper complete 1 sweep grid-lr_head0.02 && exper complete 2 sweep --status g").stdout
    assert complete.split() == ["grid-lr_head0.02-width16", "grid-lr_head0.02-width32", "grid"]


@pytest.mark.slow
def test_stopped_then_killed_sweep_resumes_exactly(grid):
    project = grid[0]
    cut = "sweep cut lr_head='[0.01, 0.02]' pause='[0.1]' -n 2 -f --jobs 2"
    assert sh(project, cut).returncode == 0
    wait_for(lambda: training(project, "cut", 0) and training(project, "cut", 1), every=0.05)
    stop = sh(project, "sweep --stop cut")  # as Ctrl-C: each running run checkpoints; the queue ends
    assert stop.returncode == 0 and "stopped (0 done, 0 running, 0 failed, 2 interrupted, 2 waiting)" in stop.stdout
    assert queue_ended(project, "cut")
    for r in records(project, "cut")[:2]:
        assert r["status"] == "interrupted"
    assert "2 interrupted" in sh(project, "sweep --status cut").stdout

    assert sh(project, cut).returncode == 0  # resumes: continues 0 and 1, then starts 2 and 3
    wait_for(lambda: training(project, "cut", 0, sessions=2, checkpoint="checkpoint/epoch_1.pth")
             and training(project, "cut", 1, sessions=2), every=0.02)
    queue = json.loads((project / "__statistic__" / "sweep" / "cut" / "queue.json").read_text())["pid"]
    task = plan(project, "cut")["runs"][0]["pid"]
    for pid in [queue, task, *descendants(task)]:  # the queue and one run die without a word
        os.kill(pid, signal.SIGKILL)
    killed = records(project, "cut")[0]
    assert killed["status"] == "running"
    assert re.search(r"^0\s+dead", sh(project, f"expels {killed['tag']}").stdout, re.M)
    assert "queue: gone (pid" in sh(project, "sweep --status cut").stdout

    again = sh(project, cut)  # the other run is still training: the new queue waits for it
    assert again.returncode == 0 and re.search(r"[34] of 4 runs to go", again.stdout), again.stdout
    wait_for(lambda: queue_ended(project, "cut"), timeout=300, every=0.2)
    runs = records(project, "cut")
    assert [r["status"] for r in runs] == ["finished"] * 4
    assert len(runs[0]["sessions"]) == 3  # run, con after --stop, con after the kill
    assert len(runs[1]["sessions"]) == 2  # its second session went on alone, and the new queue waited for it
    for r in runs:  # exactly as the uninterrupted grid's runs of the same values and seed
        expected = reference(project, r["hyperparameters"]["lr_head"], r["seed"])
        assert r["weights_sha256"] == expected["weights_sha256"] and r["metrics"] == expected["metrics"]
    for tag in {r["tag"] for r in runs}:  # nothing ran twice
        assert sorted(os.listdir(project / "__result__" / tag)) == ["0", "1"]
    listed = (project / "__statistic__" / "exper-list" / "cut.txt").read_text().split()
    assert sorted(listed) == sorted(f"{r['tag']}/{r['id']}" for r in runs)
    assert "4 runs: 4 done" in sh(project, "sweep --status cut").stdout


@pytest.mark.slow
def test_failed_runs_do_not_stop_the_others_and_are_not_retried(project):
    result = sh(project, "sweep bad fail_at_step='[3, 0]' dropout='[0.2, 1.5]' -f --jobs 2")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: queue_ended(project, "bad"), timeout=300, every=0.2)
    status = sh(project, "sweep --status bad").stdout
    assert "4 runs: 1 done, 0 running, 3 failed, 0 waiting" in status, status
    assert re.search(r"bad-fail_at_step3-dropout0.2\s+20201127\s+0\s+crashed", status)
    assert re.search(r"bad-fail_at_step0-dropout0.2\s+20201127\s+0\s+finished", status)
    assert len(re.findall(r"dropout1.5\s+20201127\s+failed \(exit \d+\)", status)) == 2  # refused by main.py's check
    assert "boom at step 3" in statistic(project, "bad-fail_at_step3-dropout0.2", 0)["error"]
    again = sh(project, "sweep bad fail_at_step='[3, 0]' dropout='[0.2, 1.5]' -f --jobs 2")
    assert again.returncode == 0
    wait_for(lambda: queue_ended(project, "bad"), timeout=300, every=0.2)
    assert os.listdir(project / "__result__" / "bad-fail_at_step3-dropout0.2") == ["0"]  # a crash is not retried
    status = sh(project, "sweep --status bad").stdout
    assert "1 done, 0 running, 3 failed" in status and "what run <#> printed: __statistic__/sweep/bad/tasks" in status
    assert "dropout must be from 0 up to" in (project / "__statistic__/sweep/bad/tasks/1.log").read_text()


@pytest.mark.slow
def test_slurm_job_array_signalled_stopped_and_resubmitted(grid, slurm_env):
    project = grid[0]
    submit = "sweep sl lr_head='[0.01, 0.02]' pause='[0.2]' -f --slurm --sbatch '--cpus-per-task=1 --mem=500M'"
    too_big = submit.replace("--cpus-per-task=1", "--cpus-per-task=999")  # checked with sbatch --test-only first
    refused(project, too_big, "sbatch refused the sweep: ", env=slurm_env)
    result = sh(project, submit, env=slurm_env)
    assert result.returncode == 0, result.stderr
    job = re.search(r"SLURM job (\d+), 2 array tasks \(0-1\)", result.stdout).group(1)
    script = (project / "__statistic__" / "sweep" / "sl" / "sweep.sbatch").read_text()
    assert "#SBATCH --signal=B:TERM@120" in script  # the shipped code/sweep.sbatch's lines
    assert script.rstrip().endswith('sweep --task sl "$SLURM_ARRAY_TASK_ID"') and "\nexec " in script
    wait_for(lambda: training(project, "sl", 0) and training(project, "sl", 1), timeout=120, every=0.05)
    status = sh(project, "sweep --status sl", env=slurm_env).stdout
    assert f"slurm: job {job}; 2 tasks queued or running" in status and "2 running" in status

    # a signal to one task's batch script, as a scheduler's preemption or --signal=B:TERM@<s> sends it
    subprocess.run(["scancel", "--batch", "--signal=TERM", f"{job}_1"], check=True, env={**os.environ, **slurm_env})
    wait_for(lambda: statistic(project, "sl-lr_head0.02-pause0.2", 0)["status"] == "interrupted", timeout=60)
    wait_for(lambda: statistic(project, "sl-lr_head0.01-pause0.2", 0)["status"] == "finished", timeout=120)
    wait_for(lambda: sh(project, "squeue -h", env=slurm_env).stdout.strip() == "", timeout=60)
    out = (project / "__statistic__" / "sweep" / "sl" / f"slurm-{job}_1.out").read_text()
    assert "SIGTERM received: stopping after this step with a checkpoint" in out

    refused(project, too_big, "sbatch refused the sweep: ", env=slurm_env)  # a resubmission too: nothing changes
    again = sh(project, submit, env=slurm_env)  # resubmits the unfinished task alone
    assert again.returncode == 0 and re.search(r"1 array tasks \(1\)", again.stdout), again.stdout
    wait_for(lambda: training(project, "sl", 1, sessions=2), timeout=120, every=0.05)
    stop = sh(project, "sweep --stop sl", env=slurm_env)  # scancel --batch --signal=TERM: a checkpoint again
    assert stop.returncode == 0 and "stopped (1 done, 0 running, 0 failed, 1 interrupted, 0 waiting)" in stop.stdout

    assert sh(project, submit, env=slurm_env).returncode == 0
    wait_for(lambda: statistic(project, "sl-lr_head0.02-pause0.2", 0)["status"] == "finished", timeout=120)
    runs = records(project, "sl")
    assert [len(r["sessions"]) for r in runs] == [1, 3]
    for r in runs:  # as the uninterrupted grid's runs: same values, same seed, the task's one core
        expected = reference(project, r["hyperparameters"]["lr_head"], SEED)
        assert r["weights_sha256"] == expected["weights_sha256"] and r["host"]["threads"] == 1
    wait_for(lambda: sh(project, "squeue -h", env=slurm_env).stdout.strip() == "", timeout=60)
    done = sh(project, submit, env=slurm_env)
    assert done.returncode == 0 and "nothing to submit (2 done" in done.stdout
    assert "2 runs: 2 done" in sh(project, "sweep --status sl", env=slurm_env).stdout
    assert len(plan(project, "sl")["slurm"]) == 3


# --- errors: one line, non-zero, nothing created (conftest.refused)
@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("errors") / "project")


@pytest.mark.parametrize("command, words", [
    ("sweep", "required: <prefix>"),
    ("sweep p", "no sweep 'p' yet"),
    ("sweep p nope='[1]'", "no assignment 'nope'"),
    ("sweep p lr_head=0.1", "non-empty Python list literal"),
    ("sweep p lr_head='[]'", "non-empty Python list literal"),
    ("sweep p lr_head='[0.1,'", "non-empty Python list literal"),
    ("sweep p lr_head='(0.1, 0.2)'", "non-empty Python list literal"),
    ("sweep p lr_head='[{1, 2}]'", "plain data"),
    ("sweep p lr_head='[0.1, 0.1]'", "lists 0.1 twice"),
    ("sweep p lr_head='[0.1]' lr_head='[0.2]'", "lr_head is given twice"),
    ("sweep p lr_head", "is not NAME=VALUES"),
    ("sweep _p lr_head='[0.1]'", "cannot start tag names"),
    ("sweep 'a..b' lr_head='[0.1]'", "cannot start tag names"),
    ("sweep 'a b' lr_head='[0.1]'", "cannot start tag names"),
    ("sweep finished lr_head='[0.1]'", "a list the template keeps itself"),
    ("sweep p lr_head='[0.1]' -n 0", "-n must be 1 or more"),
    ("sweep p lr_head='[0.1]' --jobs 0", "--jobs must be 1 or more"),
    ("sweep p lr_head='[0.1]' -n two", "invalid int value"),
    ("sweep p epochs='[1, 0]'", "with epochs=0: code/config.py: epochs must be a whole number >= 1"),
    ("sweep p lr_head='[0.1]' --sbatch '--time=1'", "--sbatch goes with --slurm"),
    ("sweep p lr_head='[0.1]' --bogus", "unknown option '--bogus'"),
    ("sweep --status nope", "no sweep 'nope'"),
    ("sweep --stop nope", "no sweep 'nope'"),
    ("sweep --status p lr_head='[1]'", "takes the prefix alone"),
    ("sweep --status --stop p", "do not go together"),
])
def test_bad_input_refused(plain, command, words):
    line = refused(plain, command, words)
    if "no assignment" in words:
        assert "its assignments: samples, features, batch_size" in line and "lr_head" in line


def test_dirty_tree_existing_tag_and_list_refused(project):
    (project / "notes.txt").write_text("uncommitted\n")
    refused(project, "sweep p lr_head='[0.1, 0.2]'", "the work tree has changes")
    commit(project, "notes")
    git(project, "tag", "-a", "-m", "mine", "p-lr_head0.2")  # HEAD itself, not a variant of it
    refused(project, "sweep p lr_head='[0.1, 0.2]'", "tag 'p-lr_head0.2' already marks another commit")
    lists = project / "__statistic__" / "exper-list"
    lists.mkdir(parents=True)
    (lists / "q.txt").write_text("")
    refused(project, "sweep q lr_head='[0.1]'", "a list named 'q' exists already")


def test_config_that_sets_the_name_again_refused(project):
    with open(project / "code" / "config.py", "a") as f:
        f.write("if True:\n    lr_head = 0.5\n")
    commit(project, "lr_head set twice")
    refused(project, "sweep p lr_head='[0.1]'", "code/config.py ends with lr_head = 0.5: something after line")


def test_slurm_without_sbatch_refused(project, tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH with what the shell functions need, and no SLURM
    bin_dir.mkdir()
    for program in ("bash", "python3", "git", "dirname"):
        (bin_dir / program).symlink_to(sys.executable if program == "python3" else shutil.which(program))
    refused(project, "sweep p lr_head='[0.1]' --slurm", "--slurm needs SLURM's sbatch, which is not on PATH",
            env={"PATH": str(bin_dir)})


def test_other_sweep_under_an_existing_prefix_refused(grid):
    project = grid[0]
    refused(project, "sweep grid lr_head='[0.01, 0.03]' width='[16, 32]' -n 2 -f",
            "lr_head=[0.01, 0.02] width=[16, 32] there, lr_head=[0.01, 0.03] width=[16, 32] here")
    refused(project, "sweep grid lr_head='[0.01, 0.02]' width='[16, 32]' -n 3 -f", "-n 2 there, -n 3 here")
    refused(project, "sweep grid lr_head='[0.01, 0.02]' width='[16, 32]' -n 2", "-f there, fresh seeds here")
    refused(project, "sweep grid -n 2", "-n and -f go with NAME=VALUES")


# --- the pieces, in this process
def test_rewrite_replaces_whole_values_and_keeps_comments():
    source = ("# a config\n"
              "width = 32  # the width\r\n"
              "channels = (16,\n"
              "            32)  # two widths, é\n"
              "name: str = 'a'  # annotated\n"
              "width2 = width * 2\n").encode()
    nodes = sw.assignments(source)
    assert set(nodes) == {"width", "channels", "name", "width2"}
    new = sw.rewrite(source, nodes, {"width": 8, "channels": (4, 8), "name": "b é"}).decode()
    assert new == ("# a config\n"
                   "width = 8  # the width\r\n"
                   "channels = (4, 8)  # two widths, é\n"
                   "name: str = 'b é'  # annotated\n"
                   "width2 = width * 2\n")


def test_tag_names_say_the_values_or_fall_back_to_numbers(tmp_path):
    names = ["lr", "channels", "act"]
    assert sw.tag_names(tmp_path, "s", names, [(0.01, (16, 32), "relu"), (1e-05, [8], None)]) == [
        "s-lr0.01-channels16x32-actrelu", "s-lr1e-05-channels8-actNone"]
    assert sw.tag_names(tmp_path, "s", ["act"], [("a b",), ("c",)]) == ["s-0", "s-1"]  # a blank: numbers
    assert sw.tag_names(tmp_path, "s", ["x"], [("1",), (1,)]) == ["s-0", "s-1"]  # the same text twice
    assert sw.tag_names(tmp_path, "s", ["x"], [("y" * 120,)]) == ["s-0"]  # too long
    assert sl._array([0, 1, 2, 5, 7, 8], 3) == "0-2,5,7-8%3" and sl._array([4], None) == "4"
