"""The gan recipe (code/examples/gan/) trained for real through `run`, `con`, `record`, `table` and `itb`.

Usage: python3 -m pytest code/tests/test_recipe_gan.py -q

A project starts from the recipe as a researcher would (its five files copied over code/), with
a small config: 8 epochs of 44 steps, a checkpoint every 5 steps. Its uninterrupted reference
run g/0 is checked (statistic.json, metrics.csv, table, TensorBoard over HTTP with the samples
images) and a run of the same commit killed with SIGKILL mid-run and continued must end equal
to it, byte for byte. A second project trains the GAN in two gloo processes: twice alike, and
killed and continued as exactly. Every training runs with one thread a process (ENV below).
"""
import csv
import functools
import importlib.util
import io
import os
import re
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import conftest
from conftest import CODE, eventually, get, git, kill_tree, last_step, make_project, statistic, stop_itb, wait_for

RECIPE = CODE / "examples" / "gan"
pytestmark = pytest.mark.skipif(not RECIPE.is_dir(), reason="code/examples/gan/ is gone; these tests go with it")
STEP_VALUES = ["train/loss_d", "train/loss_g", "train/d_x", "train/d_g_z", "train/d_g_z2"]
ROUND_VALUES = STEP_VALUES + ["val/d_x", "val/d_g_z"]
# 1439 training digits in batches of 32: 44 steps an epoch; 8 rounds keep the reference short
SMALL = {"epochs": 8, "checkpoint_every_steps": 5, "log_every_steps": 5, "progress_bar": False}
STEPS, ROUNDS = 44, 8
# one thread a process: on a shared 2-core machine two threads each run these tiny convolutions
# many times slower (the launcher's default is the cores divided by the processes)
ENV = {"OMP_NUM_THREADS": "1"}

# a kill is meant to land mid-run: poll often
wait_for = functools.partial(wait_for, timeout=120, every=0.002)


def sh(project, command):
    return conftest.sh(project, command, env=ENV)


def start(project, command):
    return conftest.start(project, command, env=ENV)


def folder(project, tag, id_=0):
    return Path(project) / "__result__" / tag / str(id_)


def rows(project, tag, id_=0):
    with open(folder(project, tag, id_) / "metrics.csv") as f:
        return list(csv.DictReader(f))


def recipe_module(name):
    """One of the recipe's files imported on its own (model.py and epoch.py need only torch)."""
    spec = importlib.util.spec_from_file_location(f"gan_{name}", RECIPE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the recipe's pieces, without a run
def test_models_and_grid():
    model, epoch = recipe_module("model"), recipe_module("epoch")

    class Args:
        latent, gen_channels, disc_channels = 16, 16, 16

    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    images = model.Generator(Args).eval()(z)
    assert images.shape == (5, 1, 8, 8) and images.abs().max() <= 1
    assert model.Discriminator(Args)(images).shape == (5,)
    picture = epoch.grid(images.detach(), pad=1, scale=2)  # 3 by 2 cells of 8x8 with a line around each
    assert picture.shape == (1, (2 * 9 + 1) * 2, (3 * 9 + 1) * 2) and 0 <= picture.min() <= picture.max() <= 1
    first = ((images[0] + 1) / 2).clamp(0, 1).repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert torch.equal(picture[:, 2:18, 2:18], first.detach())
    assert (picture[:, :2] == 0.5).all() and (picture[:, 20:36, 38:54] == 0.5).all()  # a line, the empty cell


# --- real runs
@pytest.fixture(scope="module")
def gan(tmp_path_factory):
    """A project started from the recipe, and its reference run g/0 (-f)."""
    project = make_project(tmp_path_factory.mktemp("gan") / "project", research=RECIPE, **SMALL)
    began = time.monotonic()
    result = sh(project, "run g -f")
    assert result.returncode == 0, result.stderr
    print(f"run g -f: {time.monotonic() - began:.1f} s")
    yield project
    stop_itb(project)


@pytest.mark.slow
def test_run_records_every_value_and_the_samples(gan):
    s = statistic(gan, "g", 0)
    assert s["status"] == "finished" and s["error"] is None and s["host"]["world_size"] == 1
    assert s["hyperparameters"]["best_metric"] is None and s["hyperparameters"]["betas"] == [0.5, 0.999]
    m = s["metrics"]
    assert m["epoch"] == ROUNDS and m["step"] == ROUNDS * STEPS
    assert set(ROUND_VALUES + ["test/d_x"]) <= set(m)
    assert m["train/loss_d"] > 0 and m["train/loss_g"] > 0
    assert all(0 < m[name] < 1 for name in ROUND_VALUES + ["test/d_x"] if "/d_" in name)  # probabilities
    assert re.fullmatch(r"[0-9a-f]{64}", s["weights_sha256"])
    ckpt = folder(gan, "g") / "checkpoint"
    assert not (ckpt / "epoch_best.pth").exists()  # best_metric None: no best checkpoint
    assert os.readlink(ckpt / "epoch_last.pth") == f"epoch_{ROUNDS}.pth"
    log = (folder(gan, "g") / "log").read_text()
    assert "test  test/d_x" in log and "Traceback" not in log and "Warning" not in log

    # metrics.csv: a step row every 5 steps from each epoch's start, a round row at each epoch's end
    table = rows(gan, "g")
    assert {f"{n}_step" for n in STEP_VALUES} | set(ROUND_VALUES) <= set(table[0])
    step_rows = [r for r in table if r["train/loss_d_step"]]
    round_rows = [r for r in table if r["val/d_x"]]
    assert [int(r["step"]) for r in step_rows] == [e * STEPS + k for e in range(ROUNDS) for k in range(5, STEPS, 5)]
    assert all(r[f"{n}_step"] for r in step_rows for n in STEP_VALUES)
    assert [(int(r["epoch"]), int(r["step"])) for r in round_rows] == [(e, e * STEPS) for e in range(1, ROUNDS + 1)]
    assert all(r[n] for r in round_rows for n in ROUND_VALUES) and len(step_rows) + len(round_rows) == len(table)
    assert float(round_rows[-1]["train/loss_d"]) == pytest.approx(m["train/loss_d"])

    # the table of the runs recorded shows the losses
    assert sh(gan, "record g").returncode == 0
    shown = sh(gan, "table")
    assert shown.returncode == 0, shown.stderr
    header, _, line = shown.stdout.splitlines()[:3]
    assert {"loss_d", "loss_g", "d_g_z2", "val/d_x", "test/d_x"} <= set(header.split())
    assert line.split()[:3] == ["g", "0", "finished"]
    with open(gan / "__statistic__" / "table" / "record.csv") as f:
        saved = list(csv.DictReader(f))
    assert float(saved[0]["metrics/train/loss_d"]) == m["train/loss_d"]

    # TensorBoard, read over HTTP: every value's curve, and a grid of samples at each round's end
    started = sh(gan, "itb g")
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    wanted = {f"{n}_step" for n in STEP_VALUES} | set(ROUND_VALUES) | {"test/d_x"}

    def images():
        found = get(url, "/data/plugin/images/images?run=g/0&tag=samples")
        return found if len(found) == ROUNDS else None

    def scalar_tags():
        return set(get(url, "/data/plugin/scalars/tags").get("g/0", {}))

    assert eventually(lambda: wanted <= scalar_tags()), scalar_tags()
    found = eventually(images)
    assert found, get(url, "/data/plugin/images/images?run=g/0&tag=samples")
    assert [image["step"] for image in found] == [e * STEPS for e in range(1, ROUNDS + 1)]
    picture = get(url, "/data/plugin/images/individualImage?" + found[-1]["query"], raw=True)
    with Image.open(io.BytesIO(picture)) as png:  # 8 rows of 8 digits, a line around each, drawn 4x
        assert png.format == "PNG" and png.size == ((8 * 9 + 1) * 4,) * 2 and png.mode == "L"
    stopped = sh(gan, f"itb --stop {url}")
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped"), stopped.stderr


def killed_then_continued(project, tag, reference, at_step, world_size=1):
    """`run <tag> -f` on the reference's commit, SIGKILLed once metrics.csv reaches at_step, then `con
    <tag>`: the same weights, final metrics and metrics.csv (byte for byte) as the uninterrupted run."""
    git(project, "tag", "-a", "-m", "same commit", tag)
    proc = start(project, f"run {tag} -f")
    run = folder(project, tag)
    try:
        wait_for(lambda: last_step(run) >= at_step or proc.poll() is not None)
    finally:
        kill_tree(proc)  # (a failed wait leaves no training behind either)
    s, expected = statistic(project, tag, 0), statistic(project, reference, 0)
    assert s["status"] == "running" and s["metrics"].get("step", 0) < expected["metrics"]["step"]  # mid-run

    result = sh(project, f"con {tag}")
    assert result.returncode == 0, result.stderr
    assert "resuming from " in (run / "log").read_text()
    s = statistic(project, tag, 0)
    assert s["status"] == "finished" and len(s["sessions"]) == 2 and s["host"]["world_size"] == world_size
    assert s["weights_sha256"] == expected["weights_sha256"]
    assert s["metrics"] == expected["metrics"]
    assert (run / "metrics.csv").read_bytes() == (folder(project, reference) / "metrics.csv").read_bytes()


@pytest.mark.slow
def test_kill_9_mid_run_then_con_is_exact(gan):
    killed_then_continued(gan, "cut", "g", 2 * STEPS + 12)  # inside epoch 3, a checkpoint every 5 steps


# --- two gloo processes: each rank trains on half the digits, 720 in batches of 32: 22 steps an epoch
@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """A project training the recipe in two processes, and its reference run g2/0 (-f)."""
    project = make_project(tmp_path_factory.mktemp("gan2") / "project", research=RECIPE, cpu_processes=2,
                           epochs=6, checkpoint_every_steps=5, log_every_steps=5, progress_bar=False)
    result = sh(project, "run g2 -f")
    assert result.returncode == 0, result.stderr
    return project


@pytest.mark.slow
def test_two_gloo_processes_train_alike_twice(two):
    result = sh(two, "run g2 -f")
    assert result.returncode == 0, result.stderr
    first, again = statistic(two, "g2", 0), statistic(two, "g2", 1)
    assert first["status"] == again["status"] == "finished"
    assert first["host"]["world_size"] == 2 and len(first["host"]["devices"]) == 2
    assert first["metrics"]["step"] == 6 * 22 and set(ROUND_VALUES + ["test/d_x"]) <= set(first["metrics"])
    assert again["weights_sha256"] == first["weights_sha256"] and again["metrics"] == first["metrics"]
    assert rows(two, "g2", 1) == rows(two, "g2", 0)


@pytest.mark.slow
def test_two_processes_kill_9_then_con_is_exact(two):
    """Each rank draws its own noise from the global generator: `con` gives every rank its own back."""
    killed_then_continued(two, "cut2", "g2", 22 + 13, world_size=2)  # inside epoch 2
