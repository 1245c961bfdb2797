"""The lm recipe (code/examples/lm/): its data in-process, then real trainings through the real shell.

Usage: python3 -m pytest -q code/tests/test_recipe_lm.py

The project's code/ is the template with the recipe's five files copied over it, as a researcher
starting from it would (`cp code/examples/lm/*.py code/`), and a tiny config: 160 steps, a round
every 40, a checkpoint every 10, and a plateau scheduler that cannot see an improvement
(lr_threshold=0.9) and has patience 1, so its rate falls at step 120 whatever the losses are:
a resume that lost the scheduler's patience count or best loss would not cut it there. One
uninterrupted `run lm -f` serves both training tests; the kill test runs lm2 on the same commit.
"""
import csv
import importlib.util
import math
import os
import re
from pathlib import Path

import pytest

from conftest import (
    CODE,
    eventually,
    get,
    git,
    kill_tree,
    last_step,
    make_project,
    sh,
    start,
    statistic,
    stop_itb,
    wait_for,
)

RECIPE = CODE / "examples" / "lm"
pytestmark = pytest.mark.skipif(not RECIPE.is_dir(), reason="code/examples/lm/ is gone; these tests go with it")
LR, FACTOR = 10.0, 0.25
CONFIG = {"max_steps": 160, "eval_every_steps": 40, "log_every_steps": 5, "checkpoint_every_steps": 10,
          "lr": LR, "lr_factor": FACTOR, "lr_patience": 1, "lr_threshold": 0.9, "progress_bar": False,
          "device": "cpu"}
EVALS = [40, 80, 120, 160]
CUT_AT = 120  # the round end where the plateau scheduler's patience runs out (rounds 2 and 3 see no improvement)


def load_recipe_module(name):
    """A recipe file as a module of its own name (code/ holds the example's dataloader.py, say)."""
    spec = importlib.util.spec_from_file_location(f"lm_{name}", RECIPE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def folder(project, tag, id_=0):
    return Path(project) / "__result__" / tag / str(id_)


def rows(project, tag, id_=0):
    with open(folder(project, tag, id_) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("lm") / "project", research=RECIPE, **CONFIG)
    result = sh(project, "run lm -f")
    assert result.returncode == 0, result.stderr
    return project


# --- the files and the data, in this process: no training
def test_config_is_plain_and_ends_with_the_template_keys():
    from utils.train import settings

    config = load_recipe_module("config")
    assert settings.check(config) == []
    assert config.max_steps > 0 and config.eval_every_steps > 0 and config.best_mode == "min"  # trained by steps
    assert config.best_metric in ("val/ppl", "val/loss")
    sections, name = {}, None
    for line in (RECIPE / "config.py").read_text().split('"""', 2)[2].splitlines():
        if line.startswith("# --- "):
            name = line
            sections[name] = []
        elif line:
            assert re.fullmatch(r"[a-z_]+ = .+  # .+", line), line  # a plain assignment with its comment
            sections[name].append(line.split(" = ")[0])
    template = next(k for k in sections if k.startswith("# --- read by the template"))
    assert template == list(sections)[-1] and sections[template] == list(settings.KEYS)


def test_data_splits_vocabulary_and_chunks():
    from types import SimpleNamespace

    import torch

    data = load_recipe_module("dataloader")
    lines = data.read_lines()
    assert len(lines) > 500 and sum(map(len, lines)) > 5000  # scikit-learn's descriptions, all of them
    train, val, test = data.split_lines(lines, 0.1, 0.1)
    assert val == lines[8::10] and test == lines[9::10]  # the fixed rule
    assert len(train) == sum(1 for i in range(len(lines)) if i % 10 < 8)
    vocab = data.build_vocab(train, 2)
    assert vocab[:2] == [data.UNK, data.EOS] and len(vocab) == len(set(vocab))
    assert set(vocab[2:]) <= {w for line in train for w in line}  # from the training part alone
    ids = torch.arange(103)
    grid = data.batchify(ids, 4)
    assert grid.shape == (25, 4) and grid[:, 1].tolist() == list(range(25, 50))  # a column is a stretch
    chunks = data.Chunks(grid, 10)
    assert len(chunks) == 3
    x, y = chunks[2]
    assert x.shape == (4, 4) and torch.equal(y, grid[21:25]) and torch.equal(x[1:], y[:-1])  # the last is shorter

    args = SimpleNamespace(val_fraction=0.1, test_fraction=0.1, min_count=2, batch_size=16, bptt=24,
                           eval_batch_size=8, seed=3, corpus="sklearn-descr")
    one = data.build_loaders(SimpleNamespace(**vars(args), rank=0, world_size=1))
    n_val = len(one.val)
    for world in (2, 3):  # under torchrun: the same number of steps on every rank, each chunk evaluated once
        ranks = [data.build_loaders(SimpleNamespace(**vars(args), rank=r, world_size=world)) for r in range(world)]
        assert len({len(list(r.train)) for r in ranks}) == 1
        assert len(list(ranks[0].train)) == math.ceil(len(one.train) / world)
        assert sum(len(r.val) for r in ranks) == n_val
    orders = []
    for epoch in (0, 0, 1):
        one.train.sampler.set_epoch(epoch)
        orders.append([x[0, 0].item() for x, _ in one.train])
    assert orders[0] == orders[1] != orders[2]  # drawn from (seed, epoch) alone


# --- training through the shell
@pytest.mark.slow
def test_run_to_the_end(proj):
    s = statistic(proj, "lm", 0)
    assert s["status"] == "finished" and s["host"]["threads"] == 1
    m = s["metrics"]
    assert m["step"] == 160 and m["val/ppl"] == pytest.approx(math.exp(m["val/loss"]))
    assert m["test/ppl"] == pytest.approx(math.exp(m["test/loss"]))
    assert m["train/ppl"] == pytest.approx(math.exp(m["train/loss"]))
    assert m["val/ppl_best"] <= m["val/ppl"] and 1 < m["test/ppl"] < len_vocab(proj)
    assert m["train/lr"] == LR * FACTOR  # the last round's rate: the plateau cut it once, at step 120

    table = rows(proj, "lm")
    evals = [r for r in table if r["val/ppl"]]
    assert [int(r["step"]) for r in evals] == EVALS
    for r in evals:
        assert float(r["val/ppl"]) == pytest.approx(math.exp(float(r["val/loss"])))
        assert float(r["train/ppl"]) == pytest.approx(math.exp(float(r["train/loss"])))
    assert float(evals[-1]["val/ppl_best"]) == pytest.approx(min(float(r["val/ppl"]) for r in evals))
    steps = [r for r in table if r["train/loss_step"]]
    assert [int(r["step"]) for r in steps] == list(range(5, 161, 5))
    for r in steps:
        assert float(r["train/ppl_step"]) == pytest.approx(math.exp(float(r["train/loss_step"])))
        assert float(r["train/lr_step"]) == (LR if int(r["step"]) <= CUT_AT else LR * FACTOR)
    assert float(steps[0]["train/loss_step"]) > float(steps[-1]["train/loss_step"])  # it learns

    log = (folder(proj, "lm") / "log").read_text()
    assert "step 160/160" in log and "test/ppl" in log and "finished: weights_sha256" in log
    ckpt = folder(proj, "lm") / "checkpoint"
    assert os.readlink(ckpt / "epoch_last.pth") == "step_160.pth" and (ckpt / "epoch_best.pth").exists()

    result = sh(proj, "record lm && table")
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "val/ppl" in line)
    assert "test/ppl" in header and "train/ppl" in header
    with open(proj / "__statistic__" / "table" / "record.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["metrics/val/ppl"]) == pytest.approx(m["val/ppl"])

    started = sh(proj, "itb lm")  # TensorBoard itself, over HTTP
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    try:
        tags = eventually(lambda: get(url, "/data/plugin/scalars/tags").get("lm/0", {}).keys() >= {"test/ppl"}
                          and get(url, "/data/plugin/scalars/tags")["lm/0"].keys())
        assert {"val/ppl", "val/loss", "train/ppl", "train/ppl_step", "train/loss_step", "test/ppl"} <= set(tags)
        points = get(url, "/data/plugin/scalars/scalars?run=lm%2F0&tag=val%2Fppl")
        assert [p[1] for p in points] == EVALS
    finally:
        stop_itb(proj)


def len_vocab(project):
    """The vocabulary's size, from the run's log line."""
    return int(re.search(r"(\d+) words in the vocabulary", (folder(project, "lm") / "log").read_text())[1])


@pytest.mark.slow
def test_kill_mid_interval_then_con_is_exact(proj):
    """kill -9 of every process of `run` between two evaluations, past a mid-interval checkpoint:
    con ends the run bit for bit as the uninterrupted one, the plateau scheduler's state included."""
    import torch

    git(proj, "tag", "-a", "-m", "same commit", "lm2")  # the reference's commit: `run lm2` takes it as it is
    proc = start(proj, "run lm2 -f")
    run = folder(proj, "lm2")

    def inside():  # past a checkpoint of round 3 (steps 81-120), which is in the middle of data epoch 5
        last = run / "checkpoint" / "epoch_last.pth"  # the checkpoint con resumes from, once it is linked
        target = os.readlink(last) if last.is_symlink() else ""
        linked = target.startswith("step_") and 80 < int(target[5:-4]) < CUT_AT
        return 80 < last_step(run) < CUT_AT and linked

    wait_for(lambda: inside() or last_step(run) >= CUT_AT, timeout=180, every=0.002)
    # SIGKILL to every process of the command at once: the training process has a session of its own
    # (utils/launch/commands.py), so os.killpg(proc.pid, SIGKILL) alone would leave it training
    kill_tree(proc)
    killed = rows(proj, "lm2")
    assert [int(r["step"]) for r in killed if r["val/ppl"]] == [40, 80], "the kill came too late: a busy machine?"
    assert statistic(proj, "lm2", 0)["status"] == "running"  # nobody could say otherwise

    result = sh(proj, "con lm2")
    assert result.returncode == 0, result.stderr
    assert "----- continued from epoch " in result.stdout
    resumed = int(re.search(r"resuming from step_(\d+)\.pth", (run / "log").read_text())[1])
    assert 80 < resumed < CUT_AT  # a mid-interval checkpoint, not a round's end

    s, r = statistic(proj, "lm2", 0), statistic(proj, "lm", 0)
    assert s["status"] == "finished" and len(s["sessions"]) == 2
    assert s["weights_sha256"] == r["weights_sha256"]
    assert s["metrics"] == r["metrics"]
    assert (run / "metrics.csv").read_text() == (folder(proj, "lm") / "metrics.csv").read_text()
    assert s["metrics"]["train/lr"] == LR * FACTOR  # cut at 120 by a patience count kept across the kill
    mine, theirs = (torch.load(folder(proj, tag) / "checkpoint" / "epoch_last.pth", weights_only=True)["objects"]
                    for tag in ("lm2", "lm"))
    assert mine["plateau"] == theirs["plateau"] and mine["plateau"]["num_bad_epochs"] == 1
    assert mine["optimizer"]["param_groups"][0]["lr"] == LR * FACTOR
