"""The digits example's own tests: they go with the example. Usage: python3 -m pytest code/tests/test_example.py -q

Replacing the example with your research (or a recipe of code/examples/) makes these skip: delete
this file then, or write your research's tests here. The template's own tests train a research
fixture of their own (tests/research/) and keep passing whatever code/ holds.
"""
import csv
import re
from pathlib import Path

import pytest

from conftest import EXAMPLE_HERE, NOT_EXAMPLE, commit, make_project, refused, set_config, sh, statistic

pytestmark = pytest.mark.skipif(not EXAMPLE_HERE, reason=NOT_EXAMPLE)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """A project of the example itself (no research fixture), trained for two epochs."""
    project = make_project(tmp_path_factory.mktemp("example") / "project", research=None, epochs=2, progress_bar=False)
    result = sh(project, "run digits -f")
    assert result.returncode == 0, result.stderr
    return project


@pytest.mark.slow
def test_the_example_trains_and_records_its_own_names(example):
    s = statistic(example, "digits", 0)
    assert s["status"] == "finished" and s["hyperparameters"]["lr"] == 0.05
    assert s["hyperparameters"]["channels"] == [16, 32] and s["hyperparameters"]["optim.momentum"] == 0.9
    m = s["metrics"]
    assert 0 <= m["val/acc"] <= 1 and m["test/acc"] > 0.5 and m["train/loss"] > 0 and m["val/acc_best"] >= m["val/acc"]
    assert 0 < m["train/lr"] < 0.05
    with open(Path(example) / "__result__" / "digits" / "0" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows if r["val/acc"]] == ["45", "90"]  # 1,439 images, 32 a batch
    assert all(r["train/acc_step"] for r in rows if not r["val/acc"])
    log = (Path(example) / "__result__" / "digits" / "0" / "log").read_text()
    assert "digits: 1439 train / 179 val / 179 test images" in log
    assert re.search(r"epoch 2/2 .*val/acc 0\.\d{4}", log)


@pytest.mark.slow
def test_the_example_refuses_its_own_bad_values(example):
    set_config(example, dropout=1.5, optimizer="adam")
    commit(example, "bad values")
    line = refused(example, "run bad -f", "code/config.py: optimizer must be 'sgd' or 'adamw', not 'adam'")
    assert "dropout must be a number from 0 up to (not including) 1, not 1.5" in line
