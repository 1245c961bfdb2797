"""What the template promises any research: names everywhere, a best metric or none, training by steps,
any data loader resumed exactly. Usage: python3 -m pytest code/tests/test_research_contract.py -q

Real trainings of the tests' research (two models, a shuffling DataLoader with no generator of
its own, dropout) through the real shell.
"""
import csv
import os
import signal
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import git, kill_tree, make_project, set_config, sh, start, statistic, wait_for

pytestmark = pytest.mark.slow


def folder(project, tag, id_=0):
    return Path(project) / "__result__" / tag / str(id_)


def rows(project, tag, id_=0):
    with open(folder(project, tag, id_) / "metrics.csv") as f:
        return list(csv.DictReader(f))


def tags_in_tensorboard(project, tag):
    events = EventAccumulator(str(folder(project, tag) / "tensorboard"))
    events.Reload()
    return events, set(events.Tags()["scalars"])


def test_every_name_reaches_tensorboard_and_epoch_does_not(project):
    assert sh(project, "run names -f").returncode == 0
    events, scalars = tags_in_tensorboard(project, "names")
    assert {"train/mse", "train/mae", "train/rmse", "val/mse", "val/rmse", "val/mse_best", "train/mse_step",
            "train/rmse_step", "test/mse", "test/rmse"} <= scalars
    assert "epoch" not in scalars and "step" not in scalars
    test = events.Scalars("test/mse")
    assert [e.step for e in test] == [36] and test[0].value == pytest.approx(statistic(project, "names", 0)["metrics"]
                                                                             ["test/mse"], rel=1e-6)
    listing = sh(project, "expels names").stdout
    assert "val/mse_best" in listing and "test/mse" in listing and "test/rmse" in listing


def test_no_best_metric_and_an_unknown_one(project):
    set_config(project, best_metric=None)
    git(project, "commit", "-qam", "no best")
    assert sh(project, "run nobest -f").returncode == 0
    ckpt = folder(project, "nobest") / "checkpoint"
    assert not os.path.lexists(ckpt / "epoch_best.pth") and (ckpt / "epoch_last.pth").exists()
    assert "val/mse_best" not in statistic(project, "nobest", 0)["metrics"]

    set_config(project, best_metric="val/acc", checkpoint_every_steps=5)
    git(project, "commit", "-qam", "a metric nobody reports")
    result = sh(project, "run unknown -f")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    s = statistic(project, "unknown", 0)
    assert s["status"] == "crashed" and s["error"].startswith("best_metric 'val/acc' (code/config.py) is none of the "
                                                              "metrics this run reports: train/lr_head, train/mae")
    assert "val/mse" in s["error"]
    assert sorted(p.name for p in (folder(project, "unknown") / "checkpoint").glob("step_*.pth"))  # kept


def test_test_best_loads_the_best_checkpoints_weights(project):
    set_config(project, test_best=True, epochs=4)
    git(project, "commit", "-qam", "test the best weights")
    assert sh(project, "run best -f").returncode == 0
    s = statistic(project, "best", 0)
    log = (folder(project, "best") / "log").read_text()
    best = min(float(r["val/mse"]) for r in rows(project, "best") if r["val/mse"])
    assert s["metrics"]["val/mse_best"] == pytest.approx(best)
    assert "loaded the weights of epoch_" in log


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    """Trained by steps: 40 of them, a round every 15 (18 steps make an epoch), checkpoints every 4."""
    project = make_project(tmp_path_factory.mktemp("steps") / "project", max_steps=40, eval_every_steps=15,
                           checkpoint_every_steps=4, pause=0.03)
    assert sh(project, "run whole -f").returncode == 0
    return project


def test_training_by_steps_rounds_at_every_eval_and_at_the_budget(steps):
    table = rows(steps, "whole")
    assert [(r["epoch"], r["step"]) for r in table if r["val/mse"]] == [("0", "15"), ("1", "30"), ("2", "40")]
    s = statistic(steps, "whole", 0)
    assert s["metrics"]["step"] == 40 and s["metrics"]["epoch"] == 2
    names = {p.name for p in (folder(steps, "whole") / "checkpoint").iterdir()}
    assert "step_40.pth" in names and not any(n.startswith("epoch_") and n[6].isdigit() for n in names)
    assert "step 40/40" in sh(steps, "expels whole").stdout


def test_kill_9_in_the_middle_of_a_round_then_con_is_exact(steps):
    git(steps, "tag", "-a", "-m", "same commit", "cut")
    proc = start(steps, "run cut -f")
    wait_for(lambda: (folder(steps, "cut") / "checkpoint" / "step_20.pth").exists(), timeout=180)  # round 2 of 3
    kill_tree(proc)
    assert statistic(steps, "cut", 0)["status"] == "running"
    result = sh(steps, "con cut")
    assert result.returncode == 0, result.stderr
    s, whole = statistic(steps, "cut", 0), statistic(steps, "whole", 0)
    assert s["weights_sha256"] == whole["weights_sha256"] and s["metrics"] == whole["metrics"]
    assert (folder(steps, "cut") / "metrics.csv").read_text() == (folder(steps, "whole") / "metrics.csv").read_text()


def test_persistent_workers_resume_exactly_and_say_when_they_could_not(tmp_path):
    """Worker processes kept from epoch to epoch: the first session drew their base seed once, at epoch 0;
    a resumed session draws its workers' seed apart, so the order of every epoch is the first session's."""
    project = make_project(tmp_path / "project", epochs=3, workers=1, persistent=True, checkpoint_every_steps=6,
                           pause=0.02)
    assert sh(project, "run whole -f").returncode == 0
    git(project, "tag", "-a", "-m", "same commit", "cut")
    proc = start(project, "run cut -f")
    wait_for(lambda: (folder(project, "cut") / "checkpoint" / "step_30.pth").exists())  # in epoch 2
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    assert sh(project, "con cut").returncode == 0
    log = (folder(project, "cut") / "log").read_text()
    assert "warning: this resume is exact only if the training loader's worker processes draw no random" in log
    s, whole = statistic(project, "cut", 0), statistic(project, "whole", 0)
    assert s["weights_sha256"] == whole["weights_sha256"] and s["metrics"] == whole["metrics"]
