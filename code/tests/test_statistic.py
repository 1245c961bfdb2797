"""record, title and table against real statistic.json files in a temporary project.

Usage: python3 -m pytest code/tests/test_statistic.py -q
"""
import csv
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading

import json5
import pytest

from conftest import CODE, sh
from utils.atomic import append_line
from utils.exper import main as exper
from utils.statistic import group as group_module
from utils.statistic.columns import headers


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPER_ROOT", str(tmp_path))
    return tmp_path


def make_run(root, tag, id_, status="finished", hyperparameters=None, metrics=None, **fields):
    """Write __result__/<tag>/<id>/statistic.json as a run would (schema 1)."""
    stat = {
        "schema": 1, "tag": tag, "id": id_, "status": status,
        "commit": "ab" * 20, "subject": "try it", "seed": 1000 + id_, "fixed_seed": False,
        "command": f"run {tag}", "pid": 1,
        "started": "2026-11-22T10:00:00+00:00", "ended": None, "duration_s": None,
        "sessions": [], "host": {"hostname": socket.gethostname(), "world_size": 1},
        "hyperparameters": {"lr": 0.01, "batch_size": 64} if hyperparameters is None else hyperparameters,
        "metrics": {"train/loss": 0.5, "val/acc": 0.9} if metrics is None else metrics,
        "weights_sha256": "00", "error": None,
    }
    stat.update(fields)
    folder = root / "__result__" / tag / str(id_)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "statistic.json").write_text(json.dumps(stat, indent=2))
    return stat


def run(capsys, *argv):
    """(exit code, stdout, stderr) of `exper <argv>` in this process."""
    code = exper(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def list_file(root, name="record"):
    return root / "__statistic__" / "exper-list" / f"{name}.txt"


def title_file(root, name="record"):
    return root / "__statistic__" / "title" / f"{name}.json"


def read_csv(root, name="record"):
    with open(root / "__statistic__" / "table" / f"{name}.csv", newline="") as f:
        return list(csv.reader(f))


def data_lines(out):
    """The rows of a `simple` terminal table (below the ---- rule)."""
    lines = out.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    return [line for line in lines[rule + 1:] if line and not line.startswith(("...", "wrote "))]


# --- record -----------------------------------------------------------------------------

def test_record_expands_tags_keeps_order_and_skips_duplicates(root, capsys):
    for id_ in range(3):
        make_run(root, "base", id_)
    make_run(root, "small-lr", 0)
    code, out, _ = run(capsys, "record", "small-lr/0", "base")
    assert code == 0 and "added 4 runs" in out
    code, out, _ = run(capsys, "record", "base/1", "small-lr")
    assert code == 0 and "added 0 runs" in out and "2 already there" in out
    assert list_file(root).read_text() == "small-lr/0\nbase/0\nbase/1\nbase/2\n"


def test_record_to_a_named_list(root, capsys):
    make_run(root, "base", 0)
    assert run(capsys, "record", "base", "-l", "paper")[0] == 0
    assert list_file(root, "paper").read_text() == "base/0\n"
    assert not list_file(root).exists()


@pytest.mark.parametrize("argv", [["nope"], ["base/7"], ["base/x"], ["_scratch/0"], ["base", "nope"],
                                  ["base", "-l", "a/b"], ["base", "-l", ".hidden"]])
def test_record_refuses_unknown_runs_and_bad_names_writing_nothing(root, capsys, argv):
    make_run(root, "base", 0)
    make_run(root, "_scratch", 0)
    list_file(root).parent.mkdir(parents=True)
    list_file(root).write_text("# mine\nbase/0\n")
    code, out, err = run(capsys, "record", *argv)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert list_file(root).read_text() == "# mine\nbase/0\n"
    assert sorted(p.name for p in list_file(root).parent.iterdir() if not p.name.startswith(".")) == ["record.txt"]


def test_record_without_runs_takes_the_last_finished(root, capsys):
    make_run(root, "a", 0)
    make_run(root, "b", 0)
    finished = list_file(root, "finished")
    finished.parent.mkdir(parents=True)
    finished.write_text("a/0\n# a comment\nb/0\n\n")
    assert run(capsys, "record")[0] == 0
    assert list_file(root).read_text() == "b/0\n"


def test_record_without_runs_and_nothing_finished_is_an_error(root, capsys):
    make_run(root, "a", 0, status="crashed")
    code, _, err = run(capsys, "record")
    assert code == 1 and "no finished run yet" in err
    assert not list_file(root).exists()


def test_lists_accept_comments_and_blank_lines(root, capsys):
    make_run(root, "a", 0)
    make_run(root, "a", 1)
    list_file(root).parent.mkdir(parents=True)
    list_file(root).write_text("# best runs\n\na/0   # the first\n   \n")
    assert run(capsys, "record", "a")[0] == 0
    assert list_file(root).read_text() == "# best runs\n\na/0   # the first\n   \na/1\n"
    assert run(capsys, "table")[0] == 0
    assert [row[:2] for row in read_csv(root)[1:]] == [["a", "0"], ["a", "1"]]


@pytest.mark.parametrize("line", ["a", "a/x", "a/0 a/1", "-a/0", "a/0/1", "a b/0"])
@pytest.mark.parametrize("command", ["record", "title", "table"])
def test_a_malformed_list_line_is_an_error_naming_file_and_line(root, capsys, line, command):
    make_run(root, "a", 0)
    make_run(root, "a", 1)
    list_file(root).parent.mkdir(parents=True)
    list_file(root).write_text(f"a/0\n# fine\n{line}\n")
    code, out, err = run(capsys, command, *(["a/1"] if command == "record" else []))
    assert code == 1 and out == ""
    assert err.startswith("error: __statistic__/exper-list/record.txt:3: ")
    assert list_file(root).read_text() == f"a/0\n# fine\n{line}\n"
    assert not (root / "__statistic__" / "title").exists() and not (root / "__statistic__" / "table").exists()


def test_concurrent_records_and_finishing_runs_lose_no_line(root):
    tags = [f"t{i}" for i in range(8)]
    for tag in tags:
        make_run(root, tag, 0)
    env = dict(os.environ, EXPER_ROOT=str(root))
    finished = list_file(root, "finished")

    def finish():
        for i in range(40):
            append_line(finished, f"f/{i}")

    appender = threading.Thread(target=finish)
    appender.start()
    exper_py = str(CODE / "utils" / "exper.py")
    procs = [subprocess.Popen([sys.executable, exper_py, "record", tag, "-l", "finished"], env=env,
                              stdout=subprocess.DEVNULL) for tag in tags]
    assert [p.wait() for p in procs] == [0] * len(tags)
    appender.join()
    lines = finished.read_text().splitlines()
    assert sorted(lines) == sorted([f"{t}/0" for t in tags] + [f"f/{i}" for i in range(40)])


# --- title ------------------------------------------------------------------------------

def test_title_is_the_union_of_keys_meta_then_hyperparameters_then_metrics(root, capsys):
    make_run(root, "a", 0, hyperparameters={"lr": 0.1, "optim.momentum": 0.9}, metrics={"train/loss": 1.0})
    make_run(root, "a", 1, hyperparameters={"lr": 0.1, "depth": 3}, metrics={"val/acc": 0.5, "train/loss": 2.0})
    run(capsys, "record", "a")
    code, out, _ = run(capsys, "title")
    assert code == 0 and out == "__statistic__/title/record.json: 10 columns; 10 new\n"
    keys = ["status", "seed", "commit", "started", "duration_s", "hyperparameters/lr",
            "hyperparameters/optim.momentum", "hyperparameters/depth", "metrics/train/loss", "metrics/val/acc"]
    text = title_file(root).read_text()
    assert json5.loads(text) == keys
    key_lines = [line.strip() for line in text.splitlines() if line.strip().startswith('"')]
    assert key_lines == [f"{json.dumps(k)}," for k in keys]  # one key per line, each with its comma


def test_title_regeneration_keeps_comments_and_order_and_appends_new_keys(root, capsys):
    make_run(root, "a", 0, hyperparameters={"lr": 0.1}, metrics={"val/acc": 0.5})
    run(capsys, "record", "a")
    title_file(root).parent.mkdir(parents=True)
    edited = ('// my columns\n[\n  "metrics/val/acc",  // the headline\n  // "status",\n  "hyperparameters/lr",\n'
              '  // --- meta ---\n  "seed"\n]\n')
    title_file(root).write_text(edited)
    code, out, _ = run(capsys, "title")
    assert code == 0 and "3 new" in out
    text = title_file(root).read_text()
    assert text == edited.replace('"seed"\n]', '"seed",\n  "commit",\n  "started",\n  "duration_s",\n]')
    assert json5.loads(text) == ["metrics/val/acc", "hyperparameters/lr", "seed", "commit", "started", "duration_s"]
    make_run(root, "a", 1, hyperparameters={"lr": 0.1}, metrics={"val/acc": 0.5, "test/acc": 0.4})
    run(capsys, "record", "a")
    run(capsys, "title")
    assert title_file(root).read_text() == text.replace('"duration_s",\n', '"duration_s",\n  "metrics/test/acc",\n')
    before = title_file(root).stat().st_mtime_ns
    assert "0 new" in run(capsys, "title")[1]
    assert title_file(root).stat().st_mtime_ns == before  # nothing new: the file is left alone


def test_title_reads_any_json5_layout(root, capsys):
    make_run(root, "a", 0, hyperparameters={"lr": 0.1}, metrics={"val/acc": 0.5})
    run(capsys, "record", "a")
    title_file(root).parent.mkdir(parents=True)
    title_file(root).write_text('["metrics/val/acc", /* not now */ "seed",]\n// "status",\n')
    assert run(capsys, "table")[0] == 0
    assert read_csv(root)[0] == ["tag", "id", "metrics/val/acc", "seed"]
    assert run(capsys, "title")[0] == 0  # rewritten one key per line, the user's keys first
    assert json5.loads(title_file(root).read_text()) == [
        "metrics/val/acc", "seed", "commit", "started", "duration_s", "hyperparameters/lr"]
    assert '  // "status",' in title_file(root).read_text()


@pytest.mark.parametrize(("text", "where"), [
    ('[\n  "seed"\n  "status",\n]\n', "record.json:2: a comma is missing"),
    ('[\n  "seed",\n  "status",\n', "record.json:4:"),
    ('[\n  "seed",\n  3,\n]\n', "record.json:3:"),
    ('[\n  "seed",\n  "metrics/",\n]\n', "record.json:3:"),
    ('{"seed": 1}\n', "record.json: not a JSON list"),
    ('[\n  "seed",\n  seed,\n]\n', "record.json:3:"),
])
@pytest.mark.parametrize("command", ["title", "table"])
def test_a_bad_title_is_an_error_naming_file_and_line(root, capsys, text, where, command):
    make_run(root, "a", 0)
    run(capsys, "record", "a")
    title_file(root).parent.mkdir(parents=True)
    title_file(root).write_text(text)
    code, out, err = run(capsys, command)
    assert code == 1 and out == ""
    assert err.startswith(f"error: __statistic__/title/{where}") and err.count("\n") == 1
    assert title_file(root).read_text() == text
    assert not (root / "__statistic__" / "table").exists()


def test_title_of_a_missing_or_empty_list_is_an_error(root, capsys):
    code, _, err = run(capsys, "title", "paper")
    assert code == 1 and "no list __statistic__/exper-list/paper.txt" in err
    list_file(root).parent.mkdir(parents=True)
    list_file(root).write_text("# nothing yet\n")
    code, _, err = run(capsys, "table")
    assert code == 1 and "holds no runs" in err
    assert not title_file(root).exists()


# --- table ------------------------------------------------------------------------------

def known_runs(root, capsys):
    """Four runs with values the tests check by hand."""
    make_run(root, "base", 0, hyperparameters={"lr": 0.1, "batch_size": 9, "aug": ["crop", "flip"], "amp": True},
             metrics={"train/loss": 0.5, "val/loss": 0.7, "val/acc": 0.80}, duration_s=100.0, seed=7)
    make_run(root, "base", 1, hyperparameters={"lr": 0.1, "batch_size": 9, "aug": ["crop", "flip"], "amp": True},
             metrics={"train/loss": 0.4, "val/loss": 0.6, "val/acc": 0.90}, duration_s=300.0, seed=8)
    make_run(root, "small", 0, hyperparameters={"lr": 0.003, "batch_size": 100, "aug": [], "amp": False},
             metrics={"train/loss": 0.3, "val/loss": 0.5, "val/acc": 0.70}, duration_s=200.0, seed=9)
    make_run(root, "wide", 0, status="crashed", hyperparameters={"lr": 0.03, "batch_size": 10, "amp": None},
             metrics={"train/loss": 0.9}, seed=10)
    assert run(capsys, "record", "base", "small", "wide")[0] == 0


def test_table_csv_holds_every_run_with_the_title_columns(root, capsys):
    known_runs(root, capsys)
    code, out, err = run(capsys, "table")
    assert code == 0 and err == ""
    assert title_file(root).exists()  # made when missing
    rows = read_csv(root)
    assert rows[0] == ["tag", "id", "status", "seed", "commit", "started", "duration_s",
                       "hyperparameters/lr", "hyperparameters/batch_size", "hyperparameters/aug", "hyperparameters/amp",
                       "metrics/train/loss", "metrics/val/loss", "metrics/val/acc"]
    commit, started = "ab" * 20, "2026-11-22T10:00:00+00:00"
    assert rows[1] == ["base", "0", "finished", "7", commit, started, "100.0", "0.1", "9", "['crop', 'flip']", "True",
                       "0.5", "0.7", "0.8"]
    assert rows[3] == ["small", "0", "finished", "9", commit, started, "200.0", "0.003", "100", "[]", "False",
                       "0.3", "0.5", "0.7"]
    assert rows[4] == ["wide", "0", "crashed", "10", commit, started, "", "0.03", "10", "", "", "0.9", "", ""]
    lines = out.splitlines()  # on the terminal: the columns equal in every row in one line, short commit and time
    assert lines[0] == "equal in every row: commit ababababab, started 2026-11-22 10:00"
    assert lines[1].split() == ["tag", "id", "status", "seed", "duration_s", "lr", "batch_size", "aug", "amp",
                                "train/loss", "val/loss", "acc"]
    assert data_lines(out)[3].split() == ["wide", "0", "crashed", "10", "0.03", "10", "0.9"]
    assert run(capsys, "table", "--full")[1].splitlines()[0].split()[4:6] == ["commit", "started"]


def test_headers_are_the_shortest_unambiguous_suffix():
    keys = ["tag", "id", "seed", "hyperparameters/seed", "hyperparameters/lr", "metrics/lr",
            "metrics/train/loss", "metrics/val/loss", "metrics/best/val/acc", "metrics/val/acc", "metrics/epoch"]
    assert headers(keys) == ["tag", "id", "seed", "hyperparameters/seed", "hyperparameters/lr", "metrics/lr",
                             "train/loss", "val/loss", "best/val/acc", "metrics/val/acc", "epoch"]


def test_commented_title_lines_hide_columns_and_order_is_the_titles(root, capsys):
    known_runs(root, capsys)
    title_file(root).parent.mkdir(parents=True)
    title_file(root).write_text('[\n  "metrics/val/acc",\n  // "status",\n  "hyperparameters/lr",\n]\n')
    code, _, err = run(capsys, "table")
    assert code == 0 and "keys of these runs are not in __statistic__/title/record.json" in err
    assert read_csv(root)[0] == ["tag", "id", "metrics/val/acc", "hyperparameters/lr"]
    assert run(capsys, "table", "-w", "status=crashed")[0] == 0  # a hidden column still filters
    assert read_csv(root, "record.view")[1:] == [["wide", "0", "", "0.03"]]
    assert len(read_csv(root)) == 5  # the list's own table keeps every run


@pytest.mark.parametrize(("argv", "ids"), [
    (["-s", "lr"], ["small/0", "wide/0", "base/0", "base/1"]),
    (["-s", "lr", "--desc"], ["base/0", "base/1", "wide/0", "small/0"]),
    (["-s", "val/acc"], ["small/0", "base/0", "base/1", "wide/0"]),  # missing last
    (["-s", "acc", "--desc"], ["base/1", "base/0", "small/0", "wide/0"]),  # missing last either way
    (["-s", "batch_size"], ["base/0", "base/1", "wide/0", "small/0"]),  # 9 < 10 < 100: as numbers
    (["-s", "status"], ["wide/0", "base/0", "base/1", "small/0"]),
    (["-s", "tag", "--desc"], ["wide/0", "small/0", "base/0", "base/1"]),
    (["-w", "batch_size<50"], ["base/0", "base/1", "wide/0"]),
    (["-w", "batch_size>=10"], ["small/0", "wide/0"]),
    (["-w", "lr<0.05"], ["small/0", "wide/0"]),
    (["-w", "lr=0.1"], ["base/0", "base/1"]),
    (["-w", "hyperparameters/lr!=0.1"], ["small/0", "wide/0"]),
    (["-w", "status=finished"], ["base/0", "base/1", "small/0"]),
    (["--where", "status = finished", "-w", "val/acc>0.75"], ["base/0", "base/1"]),
    (["-w", "val/acc<=0.8"], ["base/0", "small/0"]),
    (["-w", "acc="], ["wide/0"]),  # an empty value matches a missing one
    (["-w", "amp=true"], ["base/0", "base/1"]),
    (["-w", "tag=small"], ["small/0"]),
    (["-w", "id>0"], ["base/1"]),
    (["-w", "started>2026-11-01"], ["base/0", "base/1", "small/0", "wide/0"]),  # text compares as text
])
def test_table_sort_and_where(root, capsys, argv, ids):
    known_runs(root, capsys)
    code, out, _ = run(capsys, "table", *argv)
    assert code == 0
    assert [f"{row[0]}/{row[1]}" for row in read_csv(root, "record.view")[1:]] == ids
    assert [" ".join(line.split()[:2]) for line in data_lines(out)] == [i.replace("/", " ") for i in ids]
    assert out.splitlines()[-1] == "wrote __statistic__/table/record.view.csv (every run of the list: " \
                                   "__statistic__/table/record.csv)"
    assert len(read_csv(root)) == 5


@pytest.mark.parametrize(("argv", "message"), [
    (["-s", "nope"], "no column 'nope'"),
    (["-s", "loss"], "column 'loss' is ambiguous: it may be metrics/train/loss or metrics/val/loss; type the one"),
    (["-w", "lr"], "--where 'lr': write <column><op><value>"),
    (["-w", "nope=1"], "no column 'nope'"),
    (["--format", "nope"], "--format 'nope' is not a table format"),
    (["--bogus"], "unknown option '--bogus'"),
    (["-g", "-s", "id"], "no column 'id'"),
    (["--desc"], "--desc orders by a column"),
])
def test_table_bad_options_are_one_line_errors_writing_nothing(root, capsys, argv, message):
    known_runs(root, capsys)
    code, out, err = run(capsys, "table", *argv)
    assert code == 1 and out == ""
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (root / "__statistic__" / "table").exists() and not title_file(root).exists()


def test_hide_equal_drops_columns_equal_in_every_row(root, capsys):
    known_runs(root, capsys)
    code, out, _ = run(capsys, "table", "-e", "-w", "status=finished")
    assert code == 0
    assert read_csv(root, "record.view")[0] == ["tag", "id", "seed", "duration_s", "hyperparameters/lr",
                                 "hyperparameters/batch_size", "hyperparameters/aug", "hyperparameters/amp",
                                 "metrics/train/loss", "metrics/val/loss", "metrics/val/acc"]
    assert out.splitlines()[0].split() == ["tag", "id", "seed", "duration_s", "lr", "batch_size", "aug", "amp",
                                           "train/loss", "val/loss", "acc"]


def test_group_gives_mean_and_sample_std_per_tag(root, capsys):
    known_runs(root, capsys)
    make_run(root, "base", 2, hyperparameters={"lr": 0.1, "batch_size": 9, "aug": ["crop", "flip"], "amp": True},
             metrics={"train/loss": 0.6, "val/loss": 0.8}, duration_s=200.0, seed=9)
    run(capsys, "record", "base")
    code, out, _ = run(capsys, "table", "-g")
    assert code == 0
    rows = read_csv(root, "record.grouped")
    assert rows[0][:8] == ["tag", "n", "runs", "status", "seed", "commit", "started", "duration_s"]
    column = {name: j for j, name in enumerate(rows[0])}
    base = rows[1]
    assert base[:3] == ["base", "3", "3"]
    assert base[column["seed"]] == "(3 values)" and base[column["hyperparameters/lr"]] == "0.1"
    # train/loss over 0.5, 0.4, 0.6: mean 0.5; sample std sqrt((0 + 0.01 + 0.01) / 2) = 0.1
    assert float(base[column["metrics/train/loss"]]) == pytest.approx(0.5)
    assert float(base[column["metrics/train/loss std"]]) == pytest.approx(0.1)
    assert base[column["metrics/train/loss n"]] == "3"
    # duration_s over 100, 300, 200: mean 200, std sqrt((10000 + 10000 + 0) / 2) = 100
    assert float(base[column["duration_s"]]) == 200 and float(base[column["duration_s std"]]) == pytest.approx(100)
    # val/acc is missing from base/2: over 0.8, 0.9 only: mean 0.85, std sqrt(2 * 0.05**2 / 1) = 0.0707...
    assert float(base[column["metrics/val/acc"]]) == pytest.approx(0.85)
    assert float(base[column["metrics/val/acc std"]]) == pytest.approx(math.sqrt(0.005))
    assert base[column["metrics/val/acc n"]] == "2"
    small = rows[2]  # one run: its values, no std
    assert small[:3] == ["small", "1", "1"] and small[column["metrics/val/acc"]] == "0.7"
    assert small[column["metrics/val/acc std"]] == "" and small[column["metrics/val/acc n"]] == "1"
    assert rows[3][column["metrics/val/acc"]] == "" and rows[3][column["metrics/val/acc n"]] == ""
    terminal = data_lines(out)[0]
    assert "0.50 ± 0.10" in terminal and "200 ± 100" in terminal and "0.850 ± 0.071 (n=2)" in terminal


def test_group_with_where_and_sort_by_mean(root, capsys):
    known_runs(root, capsys)
    code, out, _ = run(capsys, "table", "-g", "-w", "status=finished", "-s", "val/acc", "--desc", "-e")
    assert code == 0
    assert [row[:2] for row in read_csv(root, "record.grouped")[1:]] == [["base", "2"], ["small", "1"]]
    assert data_lines(out)[0].split()[:2] == ["base", "2"]


def test_group_counts_seeds_and_folds_reruns_of_one(root, capsys):
    """Three identical reruns of one seed and one other seed: n=2, not 4, and the std is over the two."""
    for id_, (seed, value) in enumerate([(7, 0.4366597097685470), (7, 0.4366597097685470), (7, 0.4366597097685470),
                                         (8, 0.5)]):
        make_run(root, "same", id_, seed=seed, metrics={"val/acc": value})
    for id_ in range(3):  # equal values whose sum is not exact: the std is floating-point noise
        make_run(root, "noise", id_, seed=id_, metrics={"val/acc": 0.1 + 0.2 if id_ else 0.30000000000000004})
    run(capsys, "record", "same", "noise")
    code, out, _ = run(capsys, "table", "-g")
    assert code == 0
    rows = read_csv(root, "record.grouped")
    column = {name: j for j, name in enumerate(rows[0])}
    same = rows[1]
    assert same[:3] == ["same", "2", "4"]
    assert float(same[column["metrics/val/acc std"]]) == pytest.approx(math.sqrt(2) * (0.5 - 0.43665970976854700) / 2)
    assert "0.3 ± 0" in data_lines(out)[1] and "e-17" not in out


def test_mean_std_and_its_display():
    m = group_module.mean_std([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert m.mean == 5.0 and m.n == 8
    assert m.std == pytest.approx(math.sqrt(32 / 7))  # ddof=1, not the population's 2.0
    assert group_module.mean_std([3.0]).std is None
    assert group_module.show(group_module.Mean(0.91234, 0.00456, 3)) == "0.9123 ± 0.0046"
    assert group_module.show(group_module.Mean(1234.5, 12.3, 3)) == "1234 ± 12"
    assert group_module.show(group_module.Mean(10, 0.0, 3)) == "10 ± 0"
    assert group_module.show(group_module.Mean(0.436659709768547066, 6.2e-17, 4)) == "0.43666 ± 0"
    assert group_module.show(group_module.Mean(0.5, None, 1)) == "0.5"


@pytest.mark.parametrize(("fmt", "marker"), [("github", "|--"), ("markdown", "|--"), ("latex", "\\begin{tabular}"),
                                             ("plain", "base"), ("latex_booktabs", "\\toprule")])
def test_table_formats(root, capsys, fmt, marker):
    known_runs(root, capsys)
    code, out, _ = run(capsys, "table", "--format", fmt)
    assert code == 0 and marker in out
    if fmt == "plain":
        assert "---" not in out


def test_terminal_shows_100_rows_then_says_how_many_more(root, capsys):
    for id_ in range(130):
        make_run(root, "many", id_)
    run(capsys, "record", "many")
    code, out, _ = run(capsys, "table")
    assert code == 0
    assert len(data_lines(out)) == 100
    assert out.splitlines()[-1] == ("... 30 more rows in __statistic__/table/record.csv "
                                    "(`table record --all` prints every row)")
    assert len(read_csv(root)) == 131
    code, out, _ = run(capsys, "table", "--all")
    assert len(data_lines(out)) == 130 and "more rows" not in out


def test_corrupt_and_missing_statistic_are_skipped_with_a_warning(root, capsys):
    known_runs(root, capsys)
    (root / "__result__" / "base" / "1" / "statistic.json").write_text('{"schema": 1, "tag": ')
    (root / "__result__" / "small" / "0" / "statistic.json").unlink()
    (root / "__result__" / "wide" / "0" / "statistic.json").write_text("[1, 2]")
    code, out, err = run(capsys, "table")
    assert code == 0
    assert [row[:2] for row in read_csv(root)[1:]] == [["base", "0"]]
    warnings = err.splitlines()
    assert len(warnings) == 3 and all(w.startswith("warning: skipped ") for w in warnings)
    assert "base/1" in warnings[0] and "corrupt" in warnings[0]
    assert "small/0" in warnings[1] and "missing" in warnings[1]
    assert "wide/0" in warnings[2]
    assert len(data_lines(out)) == 1


def test_running_and_dead_runs_show_their_status(root, capsys):
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "main.py"])
    gone = subprocess.Popen([sys.executable, "-c", "pass", "main.py"])
    gone.wait()
    try:
        make_run(root, "live", 0, status="running", pid=alive.pid, metrics={"train/loss": 0.9})
        make_run(root, "live", 1, status="running", pid=gone.pid, metrics={"train/loss": 0.8})
        make_run(root, "live", 2, status="crashed", error="RuntimeError: boom")
        run(capsys, "record", "live")
        code, out, _ = run(capsys, "table", "-e")
        assert code == 0
        rows = read_csv(root)
        assert [row[2] for row in rows[1:]] == ["running", "dead", "crashed"]
        assert [line.split()[2] for line in data_lines(out)] == ["running", "dead", "crashed"]
        run(capsys, "table", "-w", "status=dead")
        assert [row[:3] for row in read_csv(root, "record.view")[1:]] == [["live", "1", "dead"]]
    finally:
        alive.kill()
        alive.wait()


def test_table_uses_the_lists_and_titles_name(root, capsys):
    known_runs(root, capsys)
    run(capsys, "record", "small", "-l", "paper")
    code, _, _ = run(capsys, "table", "paper")
    assert code == 0 and title_file(root, "paper").exists()
    assert [row[:2] for row in read_csv(root, "paper")[1:]] == [["small", "0"]]


@pytest.mark.parametrize("command", ["record", "title", "table"])
def test_help_prints_usage(capsys, command):
    with pytest.raises(SystemExit) as e:
        exper([command, "-h"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {command}")


def test_commands_run_as_a_user_runs_them_and_import_no_torch(root, capsys):
    known_runs(root, capsys)
    env = dict(os.environ, EXPER_ROOT=str(root))
    check = ("import sys; sys.path.insert(0, 'code'); from utils import exper; code = exper.main(['table', '-g']); "
             "heavy = {'torch', 'numpy', 'pandas'} & set(sys.modules); assert not heavy, heavy; sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", check], cwd=CODE.parent, env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "base" in done.stdout and " ± " in done.stdout
    done = subprocess.run([sys.executable, str(CODE / "utils" / "exper.py"), "record", "nope"], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"error: no runs of tag 'nope' in {root.resolve() / '__result__'}; `expls` lists the tags\n"


def test_through_the_shell_from_a_subfolder(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(CODE, project / "code", ignore=shutil.ignore_patterns("__pycache__", "tests", "bench"))
    make_run(project, "base", 0, metrics={"val/acc": 0.8})
    make_run(project, "base", 1, metrics={"val/acc": 0.9})
    (project / "notes").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "EXPER_ROOT"}
    script = """. code/source.sh && cd notes && record base && title && table -g -w 'acc>0.5' && \
exper table --format github -s acc --desc"""
    done = subprocess.run(["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "added 2 runs to __statistic__/exper-list/record.txt" in done.stdout
    assert "0.850 ± 0.071" in done.stdout
    assert (project / "__statistic__" / "table" / "record.csv").exists()
    github = [line for line in done.stdout.splitlines() if line.startswith("| base")]
    assert [line.split("|")[2].strip() for line in github] == ["1", "0"]


@pytest.mark.slow
def test_a_real_run_records_and_tables(project):
    assert sh(project, "run t -f").returncode == 0
    done = sh(project, "record && title && table -g --format github")  # record alone: the run just finished
    assert done.returncode == 0, done.stderr
    assert "added t/0 to __statistic__/exper-list/record.txt" in done.stdout
    with open(project / "__statistic__" / "table" / "record.grouped.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["tag"], r["n"], r["status"]) for r in rows] == [("t", "1", "finished")]
    stat = json.loads((project / "__result__" / "t" / "0" / "statistic.json").read_text())
    assert float(rows[0]["metrics/test/mse"]) == stat["metrics"]["test/mse"]
    assert rows[0]["seed"] == str(stat["seed"])
