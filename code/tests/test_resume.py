"""kill -9 at chosen instants, then `con`: the run ends bit for bit as an uninterrupted one.

Usage: python3 -m pytest code/tests/test_resume.py -q

One project per module with two commits: a small config that checkpoints every 10 steps, and
a big one (width=2048, a 50 MB checkpoint) so a kill can land inside a checkpoint write. Each
gets one uninterrupted `-f` reference run; every test kills a run of the same commit under a
new tag, continues it, and compares weights_sha256, every final metric and the whole
metrics.csv (byte for byte: each epoch and step once, the same values) with the reference.
Random instants, many of them: code/bench/kill_resume.py.
"""
import csv
import functools
import hashlib
import os
import shutil
import signal
from pathlib import Path

import pytest

from conftest import (
    commit,
    created,
    git,
    kill_tree,
    last_step,
    make_project,
    set_config,
    sh,
    start,
    statistic,
    wait_for,
)

SMALL = {"epochs": 6, "checkpoint_every_steps": 10, "log_every_steps": 5, "pause": 0.01}  # 18 steps per epoch
BIG = {"epochs": 2, "width": 2048, "depth": 2, "checkpoint_every_steps": 6, "log_every_steps": 3,
       "pause": 0.0}  # step_18 = epoch 1's end

pytestmark = pytest.mark.slow

# a kill is meant to land at an instant: poll every 2 ms, and give the big model's slow steps time
wait_for = functools.partial(wait_for, timeout=180, every=0.002)


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("resume") / "project", **SMALL)
    assert sh(project, "run ref -f").returncode == 0
    set_config(project, **BIG)
    commit(project, "big checkpoints")
    assert sh(project, "run bigref -f").returncode == 0
    git(project, "checkout", "-q", "ref")  # the small commit again: tags below go on it unless moved
    return project


def folder(project, tag, id_=0):
    return Path(project) / "__result__" / tag / str(id_)


def kill_group(proc):
    kill_tree(proc)


def con_to_end(project, selector):
    result = sh(project, f"con {selector}")
    assert result.returncode == 0, result.stderr
    return result


def assert_exact(project, tag, reference="ref"):
    s, r = statistic(project, tag, 0), statistic(project, reference, 0)
    assert s["status"] == "finished" and len(s["sessions"]) >= 2
    assert s["weights_sha256"] == r["weights_sha256"]
    assert s["metrics"] == r["metrics"]
    mine, theirs = (folder(project, t) / "metrics.csv" for t in (tag, reference))
    rows = list(csv.DictReader(mine.read_text().splitlines()))
    assert len({(r["epoch"], r["step"], bool(r["val/mse"])) for r in rows}) == len(rows)  # each row once
    assert mine.read_text() == theirs.read_text()  # and the same rows, values and order


def test_kill_mid_epoch(proj):
    proc = start(proj, "run mid -f")
    run = folder(proj, "mid")
    wait_for(lambda: last_step(run) >= 45)  # epoch 3, five steps past its step_40 checkpoint
    kill_group(proc)
    assert statistic(proj, "mid", 0)["status"] == "running"  # nobody could say otherwise
    result = con_to_end(proj, "mid")
    assert "resuming from step_" in (run / "log").read_text()
    assert "----- continued from epoch " in result.stdout
    assert_exact(proj, "mid")


def test_kill_right_after_an_epoch(proj):
    proc = start(proj, "run edge -f")
    run = folder(proj, "edge")
    wait_for(lambda: (run / "checkpoint" / "epoch_1.pth").exists())
    kill_group(proc)
    con_to_end(proj, "edge")
    assert_exact(proj, "edge")


def test_kill_the_training_process_alone(proj):
    """The launcher survives and says what happened: crashed, killed by SIGKILL; con resumes it."""
    proc = start(proj, "run alone -f")
    run = folder(proj, "alone")
    wait_for(lambda: last_step(run) >= 25)
    os.kill(statistic(proj, "alone", 0)["pid"], signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == 137
    s = statistic(proj, "alone", 0)
    assert s["status"] == "crashed" and "SIGKILL" in s["error"]
    con_to_end(proj, "alone")
    assert_exact(proj, "alone")


def test_kill_con_as_it_starts(proj):
    """Killed again while con starts (before and after its session begins): the next con is still exact."""
    proc = start(proj, "run again -f")
    run = folder(proj, "again")
    wait_for(lambda: last_step(run) >= 55)
    kill_group(proc)
    proc = start(proj, "con again")
    wait_for(lambda: proc.stdout.readline().startswith("con again/0"))  # the launcher has started main.py
    kill_group(proc)

    def count(words):
        return (run / "log").read_text().count(words)

    for words in ("resuming from", "----- continued from"):  # checkpoint loaded; session begun, metrics.csv cut
        seen = count(words)
        proc = start(proj, "con again")
        wait_for(lambda: count(words) > seen)  # noqa: B023  (called before the loop moves on)
        kill_group(proc)
    con_to_end(proj, "again")
    assert_exact(proj, "again")


@pytest.mark.parametrize("name", ["epoch_1", "step_12"])
def test_kill_inside_a_checkpoint_write(proj, name):
    """SIGKILL while the 50 MB checkpoint is half written: the torn temporary file is never loaded,
    the run resumes from the checkpoint before it, and metrics.csv keeps epoch 1's row once
    (for epoch_1, the resume point step_18 shares its step with that row)."""
    tag = f"torn-{name.replace('_', '')}"
    git(proj, "checkout", "-q", "bigref")
    try:
        proc = start(proj, f"run {tag} -f")
        ckpt = folder(proj, tag) / "checkpoint"
        tmp = ckpt / f".{name}.pth.tmp"
        wait_for(lambda: tmp.exists() and tmp.stat().st_size > 0, every=0.0005)
        kill_group(proc)
        assert tmp.exists() and not (ckpt / f"{name}.pth").exists()  # the kill did land inside the write
        assert (ckpt / "epoch_last.pth").exists() and os.readlink(ckpt / "epoch_last.pth") != f"{name}.pth"
        con_to_end(proj, tag)
    finally:
        git(proj, "checkout", "-q", "ref")
    log = (folder(proj, tag) / "log").read_text()
    assert f"resuming from {'step_18' if name == 'epoch_1' else 'step_6'}.pth" in log
    assert not tmp.exists()  # the next save removed it
    assert_exact(proj, tag, "bigref")


@pytest.mark.parametrize("damage", ["truncated", "missing", "garbage"])
def test_unreadable_newest_checkpoint_falls_back(proj, damage):
    """epoch_last.pth's target cut short after the fact, gone, or overwritten with bytes that are no
    checkpoint: con resumes from the newest other checkpoint that loads, never from the damaged one."""
    tag = f"fall-{damage}"
    proc = start(proj, f"run {tag} -f")
    run = folder(proj, tag)
    wait_for(lambda: last_step(run) >= 85)  # step_80.pth written; an older one kept beside it
    kill_group(proc)
    ckpt = run / "checkpoint"
    target = ckpt / os.readlink(ckpt / "epoch_last.pth")
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "missing":
        target.unlink()
    else:
        target.write_bytes(b"not a checkpoint")
    con_to_end(proj, tag)
    log = (run / "log").read_text()
    if damage != "missing":
        assert f"checkpoint {target.name} is not used" in log
    assert f"resuming from {target.name}" not in log
    assert_exact(proj, tag)


def disk_state(project):
    """Every file under the project (but .git's objects) with its bytes' hash, links with their target."""
    state = {}
    for path in sorted(Path(project).rglob("*")):
        if ".git" in path.parts and "refs" not in path.parts:
            continue
        rel = str(path.relative_to(project))
        if path.is_symlink():
            state[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return git(project, "tag"), state


def refused(project, command, words):
    before = disk_state(project)
    result = sh(project, command)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr
    assert disk_state(project) == before
    return lines[0]


def interrupted_run(project, tag):
    proc = start(project, f"run {tag} -f")
    wait_for(lambda: last_step(folder(project, tag)) >= 15)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    assert statistic(project, tag, 0)["status"] == "interrupted"


def test_con_refuses_a_moved_tag(proj):
    """The tag now marks a commit with another lr: con would mix two configs. Nothing changes."""
    interrupted_run(proj, "moved")
    set_config(proj, lr_encoder=0.01)
    commit(proj, "smaller lr")
    try:
        git(proj, "tag", "-f", "-a", "-m", "moved", "moved")
        refused(proj, "con moved", "now marks")
    finally:
        git(proj, "checkout", "-q", "ref")


def test_con_refuses_another_runs_checkpoint(proj):
    """A checkpoint folder copied from a run of another config is refused by main.py before it
    writes anything (log, metrics.csv, statistic.json, TensorBoard all unchanged)."""
    interrupted_run(proj, "mine")
    set_config(proj, lr_encoder=0.02)
    commit(proj, "other lr")
    try:
        interrupted_run(proj, "theirs")
    finally:
        git(proj, "checkout", "-q", "ref")
    shutil.rmtree(folder(proj, "mine") / "checkpoint")
    shutil.copytree(folder(proj, "theirs") / "checkpoint", folder(proj, "mine") / "checkpoint", symlinks=True)
    line = refused(proj, "con mine", "another config")
    assert "lr_encoder 0.02 -> 0.05" in line
    assert created(proj)[0] == git(proj, "tag")
