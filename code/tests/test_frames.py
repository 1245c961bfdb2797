"""runs() and curves(): real runs' statistic.json and metrics.csv as DataFrames, and what they refuse.

Usage: python3 -m pytest code/tests/test_frames.py -q

The real runs (two tags of two seeds each, trained by the tests' research) are made once per
session by four_runs(), which test_plot.py shares.
"""
import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_statistic import make_run

from conftest import CODE, commit, make_project, set_config, sh
from utils.cli import UsageError
from utils.statistic import curves, frames, runs
from utils.statistic.title import keys_of

_BUILT = {}


def four_runs(tmp_path_factory):
    """A project with a/0, a/1 (lr_head 0.01) and b/0, b/1 (lr_head 0.02), each pair of two seeds."""
    if "project" not in _BUILT:
        project = make_project(tmp_path_factory.mktemp("frames") / "project")
        for tag in ("a", "b"):
            if tag == "b":
                set_config(project, lr_head=0.02)
                commit(project, "a larger lr_head")
            for command in (f"run {tag} -f", f"run {tag}"):  # -f: code/seed; then a fresh seed
                done = sh(project, command)
                assert done.returncode == 0, done.stderr
        _BUILT["project"] = project
    return _BUILT["project"]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return four_runs(tmp_path_factory)


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPER_ROOT", str(tmp_path))
    return tmp_path


def stat_of(project, tag, id_):
    return json.loads((Path(project) / "__result__" / tag / str(id_) / "statistic.json").read_text())


def same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def write_metrics(root, tag, id_, text):
    folder = root / "__result__" / tag / str(id_)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.csv").write_text(text)


# --- on real runs ---------------------------------------------------------------------------

@pytest.mark.slow
def test_runs_of_real_runs_equal_their_statistic_json_in_tables_columns(real):
    frame = runs(root=real)
    assert list(zip(frame["tag"], frame["id"], strict=True)) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    stats = [stat_of(real, t, i) for t, i in [("a", 0), ("a", 1), ("b", 0), ("b", 1)]]
    assert list(frame.columns) == ["tag", "id"] + keys_of(stats)
    done = sh(real, "record a b -l every && table every")  # the columns `table` names
    assert done.returncode == 0, done.stderr
    with open(real / "__statistic__" / "table" / "every.csv", newline="") as f:
        assert list(frame.columns) == next(csv.reader(f))
    for row, stat in zip(frame.itertuples(index=False), stats, strict=True):
        cells = dict(zip(frame.columns, row, strict=True))
        assert cells["status"] == stat["status"] == "finished"
        assert cells["seed"] == stat["seed"] and cells["commit"] == stat["commit"]
        assert cells["started"] == pd.Timestamp(stat["started"]) and cells["duration_s"] == stat["duration_s"]
        for section in ("hyperparameters", "metrics"):
            for name, value in stat[section].items():
                assert same(cells[f"{section}/{name}"], value), (section, name)
    assert frame["seed"].nunique() == 3  # -f gives a/0 and b/0 code/seed's value; a/1, b/1 fresh ones
    dtypes = frame.dtypes
    assert dtypes["id"] == "int64" and dtypes["seed"] == "int64" and dtypes["metrics/epoch"] == "int64"
    assert dtypes["hyperparameters/epochs"] == "int64" and dtypes["hyperparameters/test_best"] == "bool"
    for key in ("duration_s", "hyperparameters/lr_head", "metrics/val/mse", "metrics/test/mse"):
        assert dtypes[key] == "float64", key
    for key in ("tag", "status", "commit", "hyperparameters/best_metric"):
        assert pd.api.types.is_string_dtype(dtypes[key]), key
    assert isinstance(dtypes["started"], pd.DatetimeTZDtype) and str(dtypes["started"].tz) == "UTC"
    assert list(frame["hyperparameters/lr_head"]) == [0.01, 0.01, 0.02, 0.02]


@pytest.mark.slow
def test_runs_selects_as_the_commands_do(real):
    assert list(runs("b", root=real)["id"]) == [0, 1]
    picked = runs("b/1", "a/0", "b/1", root=real)
    assert list(zip(picked["tag"], picked["id"], strict=True)) == [("b", 1), ("a", 0)]
    assert sh(real, "record a/1 -l one").returncode == 0
    listed = runs(list_name="one", root=real)
    assert list(zip(listed["tag"], listed["id"], strict=True)) == [("a", 1)]
    both = runs("b/0", list_name="one", root=real)
    assert list(zip(both["tag"], both["id"], strict=True)) == [("b", 0), ("a", 1)]


@pytest.mark.slow
def test_curves_of_real_runs_equal_their_metrics_csv(real):
    frame = curves(root=real)
    expected = []
    for tag, id_ in [("a", 0), ("a", 1), ("b", 0), ("b", 1)]:
        with open(real / "__result__" / tag / str(id_) / "metrics.csv", newline="") as f:
            for row in csv.DictReader(f):
                step_row = all(name.endswith("_step") for name, v in row.items() if v and name not in ("epoch", "step"))
                for name, value in row.items():
                    if name not in ("epoch", "step") and value != "":
                        expected.append((tag, id_, int(row["epoch"]), int(row["step"]),
                                         "step" if step_row else "epoch", name, float(value)))
    assert list(frame.columns) == ["tag", "id", "epoch", "step", "kind", "metric", "value"]
    assert [tuple(r) for r in frame.itertuples(index=False)] == expected
    assert {m: k for m, k in zip(frame["metric"], frame["kind"], strict=True)}["train/mse_step"] == "step"
    assert set(frame.loc[frame["kind"] == "epoch", "metric"]) >= {"train/mse", "val/mse", "val/mse_best"}
    assert not any(frame.loc[frame["kind"] == "epoch", "metric"].str.endswith("_step"))
    dtypes = frame.dtypes
    assert (dtypes["id"], dtypes["epoch"], dtypes["step"], dtypes["value"]) == ("int64", "int64", "int64", "float64")
    assert all(pd.api.types.is_string_dtype(dtypes[c]) for c in ("tag", "kind", "metric"))
    val = curves("b/1", metrics="val/*", root=real)
    assert set(val["metric"]) == {"val/mse", "val/mae", "val/rmse", "val/mse_best"} and set(val["tag"]) == {"b"}
    assert list(val["step"].unique()) == [18, 36] and list(val["epoch"].unique()) == [1, 2]
    two = curves("a", metrics=["train/mse", "train/mse_step"], root=real)
    assert set(zip(two["metric"], two["kind"], strict=True)) == {("train/mse", "epoch"), ("train/mse_step", "step")}


@pytest.mark.slow
def test_a_notebook_at_the_project_root_imports_them_as_readme_says(real):
    env = {k: v for k, v in os.environ.items() if k != "EXPER_ROOT"}
    script = ("import sys\nsys.path.insert(0, 'code')\nfrom utils.statistic import runs, curves\n"
              "print(len(runs()), sorted(set(curves(metrics='val/mse')['tag'])))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=real, env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout == "4 ['a', 'b']\n"


# --- synthetic runs: dtypes, warnings, refusals -------------------------------------------------

def test_only_the_frames_import_pandas():
    check = ("import sys; sys.path.insert(0, sys.argv[1])\n"
             "import utils.statistic, utils.statistic.record, utils.statistic.title, utils.statistic.table\n"
             "from utils.statistic import group\n"
             "assert 'pandas' not in sys.modules and 'utils.statistic.frames' not in sys.modules\n"
             "from utils.statistic import runs, curves\n"
             "assert 'pandas' in sys.modules and runs.__module__ == 'utils.statistic.frames'\n"
             "assert 'runs' in dir(utils.statistic)\n"
             "try:\n    utils.statistic.nope\nexcept AttributeError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", check, str(CODE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "module 'utils.statistic' has no attribute 'nope'\n"


def test_dtypes_nan_strings_lists_and_missing_values(root):
    make_run(root, "t", 0, hyperparameters={"lr": 0.1, "depth": 2, "aug": ["crop", "flip"], "amp": True, "w": 1,
                                            "name": "NaN", "clip": None, "mix": 1},
             metrics={"val/acc": "NaN", "train/loss": 0.5, "big": "Infinity", "all_nan": "NaN"}, duration_s=12.5)
    make_run(root, "t", 1, hyperparameters={"lr": 0.01, "aug": [], "w": 0.5, "name": "x", "clip": None, "mix": "a"},
             metrics={"val/acc": 0.75, "train/loss": "-Infinity", "big": 3, "all_nan": "NaN"})
    frame = runs()
    assert frame.dtypes["hyperparameters/lr"] == "float64" and frame.dtypes["hyperparameters/w"] == "float64"
    assert frame.dtypes["hyperparameters/depth"] == "Int64"  # an int that one run lacks
    assert list(frame["hyperparameters/depth"].isna()) == [False, True] and frame["hyperparameters/depth"][0] == 2
    assert frame.dtypes["hyperparameters/amp"] == "boolean" and bool(frame["hyperparameters/amp"][0]) is True
    assert frame.dtypes["hyperparameters/aug"] == "object"
    assert list(frame["hyperparameters/aug"]) == [["crop", "flip"], []]
    assert pd.api.types.is_string_dtype(frame.dtypes["hyperparameters/name"])  # a text value, not a float
    assert list(frame["hyperparameters/name"]) == ["NaN", "x"]
    assert list(frame["hyperparameters/clip"]) == [None, None] and list(frame["hyperparameters/mix"]) == [1, "a"]
    assert frame.dtypes["metrics/val/acc"] == "float64" and math.isnan(frame["metrics/val/acc"][0])
    assert frame["metrics/val/acc"][1] == 0.75
    assert list(frame["metrics/train/loss"]) == [0.5, -math.inf] and list(frame["metrics/big"]) == [math.inf, 3.0]
    assert frame.dtypes["metrics/all_nan"] == "float64" and frame["metrics/all_nan"].isna().all()
    assert frame.dtypes["duration_s"] == "float64" and frame["duration_s"][0] == 12.5
    assert math.isnan(frame["duration_s"][1])
    assert frame["started"][0] == pd.Timestamp("2026-11-22T10:00:00+00:00")


def test_a_missing_or_corrupt_statistic_is_left_out_with_a_warning(root, capsys):
    for id_ in range(3):
        make_run(root, "t", id_)
    (root / "__result__" / "t" / "1" / "statistic.json").write_text('{"schema": 1, "tag": ')
    assert list(runs()["id"]) == [0, 2]
    assert capsys.readouterr().err.startswith("warning: skipped t/1: ")
    lists = root / "__statistic__" / "exper-list"
    lists.mkdir(parents=True)
    (lists / "paper.txt").write_text("t/2\nt/7\n")
    assert list(runs(list_name="paper")["id"]) == [2]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped t/7" in err and "missing" in err


def test_no_runs_give_empty_frames_with_the_columns(root):
    assert list(runs().columns) == ["tag", "id"] and len(runs()) == 0
    assert list(curves().columns) == frames.CURVE_COLUMNS and len(curves()) == 0


@pytest.mark.parametrize(("call", "message"), [
    (lambda: runs("nope"), "no runs of tag 'nope'"),
    (lambda: runs("t/7"), "no run t/7"),
    (lambda: runs("t/x"), "the id after '/' must be a whole number"),
    (lambda: runs(list_name="paper"), "no list __statistic__/exper-list/paper.txt"),
    (lambda: curves(list_name="a/b"), "not a valid list name"),
    (lambda: curves("nope"), "no runs of tag 'nope'"),
    (lambda: curves(metrics="nope"), "no metric 'nope' in these runs' metrics.csv; the metrics are: train/loss, "
                                     "train/loss_step"),
    (lambda: curves(metrics=["train/*", "val/*"]), "no metric 'val/*'"),
])
def test_bad_selections_raise_usage_errors(root, call, message):
    make_run(root, "t", 0)
    write_metrics(root, "t", 0, "epoch,step,train/loss_step,train/loss\n0,5,0.5,\n1,10,,0.4\n")
    with pytest.raises(UsageError, match=re.escape(message)):
        call()


def test_curves_drop_a_torn_line_keep_a_logged_nan_and_skip_runs_without_a_file(root, capsys):
    for id_ in range(3):
        make_run(root, "t", id_)
    write_metrics(root, "t", 0, "epoch,step,train/loss_step,train/loss,val/acc\n0,5,nan,,\n0,10,0.25,,\n"
                                "1,10,,0.5,inf\n1,15,0.1")  # the last line torn by a kill
    write_metrics(root, "t", 1, "epoch,step,train/loss_step\n")  # started, no row yet: nothing, no warning
    frame = curves()
    assert capsys.readouterr().err == "warning: skipped t/2: __result__/t/2/metrics.csv is missing\n"
    rows = [tuple(r) for r in frame.itertuples(index=False)]
    assert rows[1:] == [("t", 0, 0, 10, "step", "train/loss_step", 0.25), ("t", 0, 1, 10, "epoch", "train/loss", 0.5),
                        ("t", 0, 1, 10, "epoch", "val/acc", math.inf)]
    assert rows[0][:6] == ("t", 0, 0, 5, "step", "train/loss_step") and math.isnan(rows[0][6])
    write_metrics(root, "t", 2, "epoch,step,x\n0,5,oops\n")
    assert len(curves(metrics="train/loss")) == 1
    assert "skipped t/2: __result__/t/2/metrics.csv is corrupt" in capsys.readouterr().err


def test_frames_scale_quick_prints_its_figures():
    done = subprocess.run([sys.executable, str(CODE / "bench" / "frames_scale.py"), "--quick"], capture_output=True,
                          text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    header, row, warm, goal = done.stdout.splitlines()
    assert header.split()[:4] == ["runs", "floor", "s", "runs()"]
    n, floor, ours, ratio = row.split()
    assert n == "100" and float(floor) > 0 and float(ours) > 0 and ratio.endswith("x")
    assert warm.startswith("in one process, pandas imported: runs() ") and goal.startswith("goal ")
