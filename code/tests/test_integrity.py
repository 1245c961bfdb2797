"""What trains is what the tag holds, what loads is what the run wrote, nothing writes outside the project.

Usage: python3 -m pytest code/tests/test_integrity.py -q

Real trainings of the tests' research through the real shell, real files, planted links and
pickles, a real full disk (a small tmpfs, when the tests run as root; skipped otherwise).
"""
import csv
import hashlib
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from conftest import commit, created, git, make_project, refused, set_config, sh, start, statistic, wait_for

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"),
                               reason="mounting a tmpfs needs root (a full or read-only disk)")


def rows(project, tag, id_=0):
    with open(Path(project) / "__result__" / tag / str(id_) / "metrics.csv") as f:
        return list(csv.DictReader(f))


def folder(project, tag, id_=0):
    return Path(project) / "__result__" / tag / str(id_)


def interrupted(project, tag, at_step=12):
    """A run of `tag` stopped by Ctrl-C once its metrics.csv reached at_step."""
    proc = start(project, f"run {tag} -f")
    wait_for(lambda: (folder(project, tag) / "metrics.csv").exists() and rows(project, tag)
             and int(rows(project, tag)[-1]["step"]) >= at_step)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    assert statistic(project, tag, 0)["status"] == "interrupted"


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """A project whose runs take a second or two (a pause in each step) and checkpoint often; its
    reference run ref/0 is uninterrupted."""
    project = make_project(tmp_path_factory.mktemp("integrity") / "project", epochs=3, pause=0.02,
                           checkpoint_every_steps=6, width=256)
    assert sh(project, "run ref -f").returncode == 0
    return project


def same_as_ref(project, tag):
    s, ref = statistic(project, tag, 0), statistic(project, "ref", 0)
    assert s["status"] == "finished" and s["weights_sha256"] == ref["weights_sha256"]
    assert s["metrics"] == ref["metrics"]
    assert (folder(project, tag) / "metrics.csv").read_text() == (folder(project, "ref") / "metrics.csv").read_text()


# --- 1. the tag's code trains, whatever happens to the work tree after the checks
@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_edits_and_commits_in_the_launch_window_do_not_reach_the_run(tmp_path, processes):
    project = make_project(tmp_path / "project", cpu_processes=processes)
    assert sh(project, "run clean -f").returncode == 0
    git(project, "tag", "-a", "-m", "the same commit", "race")
    proc = start(project, "run race -f")
    wait_for(lambda: folder(project, "race").joinpath("statistic.json").exists(), every=0.005)  # checks done
    set_config(project, lr_encoder=0.3)  # while torch still imports in the training process
    commit(project, "next idea")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    race, clean = statistic(project, "race", 0), statistic(project, "clean", 0)
    assert race["weights_sha256"] == clean["weights_sha256"] and race["hyperparameters"]["lr_encoder"] == 0.05
    assert sh(project, "run next -f").returncode == 0  # the next run trains the new commit
    assert statistic(project, "next", 0)["hyperparameters"]["lr_encoder"] == 0.3


# --- 2, 3. what loads is what the run wrote
def flip(path, count=64):
    """Flip `count` bytes in the middle of a checkpoint: inside a tensor's data, where it still unpickles."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + count] = bytes(b ^ 0xFF for b in data[middle:middle + count])
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_a_damaged_checkpoint_is_not_used_and_con_ends_exact(slow):
    git(slow, "tag", "-a", "-m", "same commit", "flipped")
    interrupted(slow, "flipped", at_step=30)
    ckpt = folder(slow, "flipped") / "checkpoint"
    target = ckpt / os.readlink(ckpt / "epoch_last.pth")
    torch.load(target, weights_only=True)  # flipped below, it still unpickles
    flip(target)
    torch.load(target, weights_only=True)
    result = sh(slow, "con flipped")
    assert result.returncode == 0, result.stderr
    log = (folder(slow, "flipped") / "log").read_text()
    assert f"checkpoint {target.name} is not used: its content does not match the hash" in log
    assert f"resuming from {target.name}" not in log
    same_as_ref(slow, "flipped")


class Planted:
    """A pickle that runs a command when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant(path, marker):
    """A checkpoint file that would run `touch marker`, with a valid hash as this template writes it."""
    torch.save({"format": 2, "objects": Planted(marker)}, path)
    data = path.read_bytes()
    comment = b"exper-sha256:" + hashlib.sha256(data).hexdigest().encode()
    path.write_bytes(data[:-2] + struct.pack("<H", len(comment)) + comment)


@pytest.mark.slow
def test_a_planted_pickle_runs_nothing(slow, tmp_path):
    git(slow, "tag", "-a", "-m", "same commit", "planted")
    interrupted(slow, "planted", at_step=30)
    ckpt = folder(slow, "planted") / "checkpoint"
    marker = tmp_path / "it-ran"
    plant(ckpt / "step_999.pth", marker)
    os.symlink("step_999.pth", ckpt / ".link")
    os.replace(ckpt / ".link", ckpt / "epoch_last.pth")
    result = sh(slow, "con planted")  # refused with its reason, then the newest real checkpoint
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    assert "checkpoint step_999.pth is not used: it does not load (Weights only load failed" in (
        folder(slow, "planted") / "log").read_text()
    same_as_ref(slow, "planted")

    only = folder(slow, "alone")  # a run whose only checkpoint is the planted one: one error line
    shutil.copytree(folder(slow, "planted"), only, symlinks=True)
    for path in (only / "checkpoint").iterdir():
        path.unlink()
    plant(only / "checkpoint" / "epoch_1.pth", marker)
    record = statistic(slow, "alone", 0)
    (only / "statistic.json").write_text(json.dumps({**record, "tag": "alone", "status": "interrupted"}))
    git(slow, "tag", "-a", "-m", "same commit", "alone", "ref")
    result = sh(slow, "con alone")
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and lines == ["error: alone/0 has no checkpoint that loads; `rerun alone` starts "
                                                "afresh"], result.stderr
    assert not marker.exists()


# --- 4. no write or delete through a link the template did not make
@pytest.mark.slow
def test_a_linked_finished_list_is_not_written_through(slow, tmp_path):
    outside = tmp_path / "finished-outside.txt"
    outside.write_text("mine\n")
    finished = slow / "__statistic__" / "exper-list" / "finished.txt"
    finished.unlink()
    os.symlink(outside, finished)
    git(slow, "tag", "-a", "-m", "same commit", "linked")
    result = sh(slow, "run linked -f")
    assert result.returncode == 0, result.stderr
    assert outside.read_text() == "mine\n" and statistic(slow, "linked", 0)["status"] == "finished"
    assert "could not add linked/0 to finished.txt" in (folder(slow, "linked") / "log").read_text()
    finished.unlink()


@pytest.mark.slow
def test_a_linked_checkpoint_temporary_file_is_not_written_through(slow, tmp_path):
    git(slow, "tag", "-a", "-m", "same commit", "tmplink")
    interrupted(slow, "tmplink", at_step=30)
    outside = tmp_path / "victim"
    outside.write_text("keep\n")
    ckpt = folder(slow, "tmplink") / "checkpoint"
    for name in [f"step_{step}" for step in range(30, 60, 6)] + ["epoch_2", "epoch_3"]:  # what it writes next
        if not (ckpt / f"{name}.pth").exists():
            os.symlink(outside, ckpt / f".{name}.pth.tmp")
    result = sh(slow, "con tmplink")
    assert result.returncode == 0, result.stderr
    assert outside.read_text() == "keep\n"
    assert not (ckpt / "epoch_3.pth").is_symlink() and (ckpt / "epoch_3.pth").is_file()
    same_as_ref(slow, "tmplink")


@pytest.mark.slow
def test_a_linked_log_is_refused(slow, tmp_path):
    git(slow, "tag", "-a", "-m", "same commit", "loglink")
    interrupted(slow, "loglink", at_step=30)
    outside = tmp_path / "log-outside"
    outside.write_text("keep\n")
    log = folder(slow, "loglink") / "log"
    log.unlink()
    os.symlink(outside, log)
    before = statistic(slow, "loglink", 0)
    result = sh(slow, "con loglink")
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "log: is a symbolic link" in lines[0], result.stderr
    assert outside.read_text() == "keep\n" and statistic(slow, "loglink", 0) == before


def test_a_linked_list_is_refused(project, tmp_path):
    (project / "__result__" / "t" / "0").mkdir(parents=True)
    (project / "__result__" / "t" / "0" / "statistic.json").write_text(json.dumps(
        {"tag": "t", "id": 0, "status": "finished", "metrics": {}, "hyperparameters": {}}))
    outside = tmp_path / "list-outside"
    outside.write_text("")
    lists = project / "__statistic__" / "exper-list"
    lists.mkdir(parents=True)
    os.symlink(outside, lists / "mine.txt")
    refused(project, "record t -l mine", "is a symbolic link")
    assert outside.read_text() == ""


# --- 5. tables open safely in a spreadsheet
def test_csv_cells_a_spreadsheet_would_evaluate_are_escaped(project):
    values = {"link": '=HYPERLINK("http://x","y")', "cmd": "+cmd|' /C calc'!A0", "sum": "@SUM(1+1)",
              "minus": "-2+3+cmd|' /C calc'!A0", "tab": "\tx", "number": -2, "numeric_text": "-0.5",
              "plain": "sgd"}
    run = project / "__result__" / "t" / "0"
    run.mkdir(parents=True)
    (run / "statistic.json").write_text(json.dumps({"tag": "t", "id": 0, "status": "finished", "seed": 1,
                                                    "hyperparameters": values, "metrics": {"val/x": -0.25}}))
    assert sh(project, "record t && table").returncode == 0
    with open(project / "__statistic__" / "table" / "record.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["hyperparameters/link"] == "'" + values["link"] and row["hyperparameters/cmd"] == "'" + values["cmd"]
    assert row["hyperparameters/sum"] == "'@SUM(1+1)" and row["hyperparameters/minus"] == "'" + values["minus"]
    assert row["hyperparameters/tab"] == "'\tx"
    assert row["hyperparameters/number"] == "-2" and row["hyperparameters/numeric_text"] == "-0.5"
    assert row["hyperparameters/plain"] == "sgd" and row["metrics/val/x"] == "-0.25"


# --- 6. the log outlives the terminal
@pytest.mark.slow
def test_a_closed_pipe_or_full_terminal_never_breaks_the_run_or_its_log(slow):
    git(slow, "tag", "-a", "-m", "same commit", "piped")
    git(slow, "tag", "-a", "-m", "same commit", "full")
    piped = sh(slow, "run piped -f | head -1")
    assert piped.returncode == 0 and "Logging error" not in piped.stderr and "Traceback" not in piped.stderr
    assert piped.stdout.startswith("run piped/0: ") and piped.stdout.count("\n") == 1
    full = sh(slow, "run full -f > /dev/full")
    assert full.returncode == 0, full.stderr
    assert "Traceback" not in full.stderr
    for tag in ("piped", "full"):
        assert statistic(slow, tag, 0)["status"] == "finished"
        log = (folder(slow, tag) / "log").read_text()
        assert "epoch 3/3" in log and "finished: weights_sha256" in log
        same_as_ref(slow, tag)


@pytest.mark.slow
def test_a_closed_terminal_lets_the_run_carry_on(slow):
    """SIGHUP to the command's process group (a closed window, tmux kill-session): ignored, the run ends."""
    git(slow, "tag", "-a", "-m", "same commit", "hup")
    proc = start(slow, "run hup -f")
    wait_for(lambda: (folder(slow, "hup") / "metrics.csv").exists())
    os.killpg(proc.pid, signal.SIGHUP)
    proc.communicate(timeout=300)
    assert proc.returncode in (0, -signal.SIGHUP)  # bash itself may die of it: the run must not
    wait_for(lambda: statistic(slow, "hup", 0)["status"] != "running", timeout=300)
    same_as_ref(slow, "hup")
    assert "finished: weights_sha256" in (folder(slow, "hup") / "log").read_text()


# --- 7. a config compares equal to itself after a trip through statistic.json
@pytest.mark.slow
def test_nested_tuples_and_nan_in_the_config_continue_and_stay_strict_json(tmp_path):
    project = make_project(tmp_path / "project", epochs=3, pause=0.02, checkpoint_every_steps=6)
    with open(project / "code" / "config.py", "a") as f:
        f.write('milestones = ((1, 0.1), (2, 0.01))  # a nested tuple\ntolerance = float("nan")  # no tolerance\n')
    commit(project, "odd values")
    interrupted(project, "odd", at_step=12)
    result = sh(project, "con odd")
    assert result.returncode == 0, result.stderr

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in statistic.json"))

    s = strict((folder(project, "odd") / "statistic.json").read_text())
    assert s["status"] == "finished" and s["hyperparameters"]["tolerance"] == "NaN"
    assert s["hyperparameters"]["milestones"] == [[1, 0.1], [2, 0.01]]
    done = sh(project, "record odd && table")
    assert done.returncode == 0 and "odd" in done.stdout, done.stderr
    with open(project / "__statistic__" / "table" / "record.csv", newline="") as f:
        assert math.isnan(float(next(csv.DictReader(f))["hyperparameters/tolerance"]))  # a number again


# --- 8. a run recorded as running on a machine that is gone
@pytest.mark.slow
def test_a_dead_run_of_another_host_continues_with_dead(slow):
    git(slow, "tag", "-a", "-m", "same commit", "moved")
    interrupted(slow, "moved", at_step=30)
    path = folder(slow, "moved") / "statistic.json"
    record = json.loads(path.read_text())
    record.update(status="running", pid=4242, host={**record["host"], "hostname": "node-that-crashed"})
    path.write_text(json.dumps(record))
    refused(slow, "con moved", "`con moved/0 --dead` continues it")
    result = sh(slow, "con moved --dead")
    assert result.returncode == 0, result.stderr
    same_as_ref(slow, "moved")


def test_dead_is_refused_while_a_process_here_holds_the_run(project):
    training = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "main.py"])
    try:
        run = project / "__result__" / "busy" / "0"
        run.mkdir(parents=True)
        here = {"hostname": os.uname().nodename}
        record = {"tag": "busy", "id": 0, "status": "running", "pid": training.pid, "host": here, "metrics": {},
                  "hyperparameters": {}, "sessions": []}
        (run / "statistic.json").write_text(json.dumps(record))
        refused(project, "con busy --dead", "busy/0 is still running")
    finally:
        training.kill()
        training.wait()


# --- 9. finished.txt catches up
@pytest.mark.slow
def test_finished_list_catches_up_with_runs_that_missed_it(slow):
    git(slow, "tag", "-a", "-m", "same commit", "late")
    assert sh(slow, "run late -f").returncode == 0
    finished = slow / "__statistic__" / "exper-list" / "finished.txt"
    text = finished.read_text()
    finished.write_text(text.replace("late/0\n", ""))  # as a kill between its last record and the append leaves it
    os.utime(finished, (1, 1))
    result = sh(slow, "record")
    assert result.returncode == 0, result.stderr
    assert finished.read_text().splitlines()[-1] == "late/0" and "added late/0" in result.stdout


@ROOT_ONLY
@pytest.mark.slow
def test_a_full_statistic_folder_leaves_the_run_finished_and_commands_say_one_line(tmp_path):
    project = make_project(tmp_path / "project")
    statistic_dir = project / "__statistic__"
    statistic_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(statistic_dir)], check=True)
    try:
        (statistic_dir / "exper-list").mkdir()
        (statistic_dir / "exper-list" / "mine.txt").write_text("t/0\n")
        with open(statistic_dir / "filler", "wb") as f:  # the disk is full from here on
            try:
                f.write(b"x" * 10**6)
            except OSError:
                pass
        result = sh(project, "run t -f")
        assert result.returncode == 0, result.stderr
        assert statistic(project, "t", 0)["status"] == "finished"
        assert "could not add t/0 to finished.txt" in (folder(project, "t") / "log").read_text()
        for command in ("record t", "title mine", "table mine"):
            line = refused(project, command, "No space left on device")
            assert "__statistic__/" in line and "free some disk space" in line, line
    finally:
        subprocess.run(["umount", str(statistic_dir)], check=True)
    assert sh(project, "record").returncode == 0  # space again: finished.txt catches up
    assert (statistic_dir / "exper-list" / "finished.txt").read_text() == "t/0\n"


# --- 11. checks before tagging; nothing left when a run fails before training
@pytest.mark.parametrize("line, words", [
    ('name = "\\udcff"  # a lone surrogate\n', "name holds text that is not valid Unicode"),
    ("loop = {}  # holds itself\nloop['self'] = loop\n", "loop holds itself"),
    ("log_every_steps = 2.5  # not whole\n", "log_every_steps must be a whole number >= 0, not 2.5"),
])
def test_bad_values_are_refused_before_the_tag(project, line, words):
    with open(project / "code" / "config.py", "a") as f:
        f.write(line)
    commit(project, "a bad value")
    refused(project, "run bad -f", words)


@pytest.mark.slow
def test_a_value_only_the_research_checks_leaves_nothing(project):
    set_config(project, dropout=1.5)
    commit(project, "too much dropout")
    refused(project, "run drop -f", "dropout must be from 0 up to (not including) 1, not 1.5")


@ROOT_ONLY
def test_a_full_result_folder_is_one_line_and_leaves_no_tag(project):
    """statistic.json cannot be written: the launcher names the file and the reason, and keeps nothing."""
    result = project / "__result__"
    result.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(result)], check=True)
    try:
        (result / "full").mkdir()
        with open(result / "full" / "filler", "wb") as f:
            try:
                f.write(b"x" * 10**6)
            except OSError:
                pass
        line = refused(project, "run nospace -f", "No space left on device")
        assert "__result__/nospace" in line and "free some disk space" in line
        assert git(project, "tag") == ""
    finally:
        subprocess.run(["umount", str(result)], check=True)


@ROOT_ONLY
def test_a_read_only_result_folder_leaves_no_tag(project):
    result = project / "__result__"
    result.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(result)], check=True)
    try:
        refused(project, "run ro -f", "Read-only file system")
    finally:
        subprocess.run(["umount", str(result)], check=True)


@pytest.mark.slow
def test_ctrl_c_while_torch_imports_leaves_nothing_and_one_line(project):
    before = created(project)
    proc = start(project, "run early -f")
    wait_for(lambda: (project / "__result__" / "early" / "0" / "statistic.json").exists(), every=0.002)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in err and err.strip().splitlines() == ["early/0 was stopped before its training began: "
                                                                   "nothing was kept"], err
    assert created(project) == before


# --- 12. files that are valid but wrong
def write_record(project, tag, id_, **fields):
    run = project / "__result__" / tag / str(id_)
    run.mkdir(parents=True)
    base = {"tag": tag, "id": id_, "status": "finished", "seed": 1, "started": "2026-12-01T10:00:00+00:00",
            "hyperparameters": {"lr": 0.1}, "metrics": {"val/x": 0.5}, "sessions": []}
    (run / "statistic.json").write_text(json.dumps({**base, **fields}))


def test_a_run_of_the_wrong_shape_is_skipped_with_a_warning(project):
    write_record(project, "good", 0)
    write_record(project, "bad", 0, started=5)
    write_record(project, "bad", 1, metrics=[])
    listing = sh(project, "expls")
    assert listing.returncode == 0 and "good" in listing.stdout
    assert "'started' is 5, not text" in listing.stderr
    runs = sh(project, "expels bad")
    assert runs.returncode == 0 and "'metrics' is [], not dict" in runs.stderr
    table = sh(project, "record good bad && table")
    assert table.returncode == 0 and "skipped bad/0" in table.stderr and "good" in table.stdout


def test_a_list_or_title_that_is_not_utf8_or_too_deep_names_its_file(project):
    write_record(project, "good", 0)
    lists = project / "__statistic__" / "exper-list"
    lists.mkdir(parents=True)
    (lists / "record.txt").write_bytes(b"good/0\n\xff\n")
    for command in ("record good", "title", "table"):
        refused(project, command, "__statistic__/exper-list/record.txt:2: not UTF-8 text")
    (lists / "record.txt").write_text("good/0\n")
    titles = project / "__statistic__" / "title"
    titles.mkdir()
    (titles / "record.json").write_text("[" * 500)
    refused(project, "table", "__statistic__/title/record.json: nested too deep")


def test_a_config_key_ending_in_a_slash_gets_its_column(project):
    write_record(project, "slash", 0, hyperparameters={"paths.out/": 1})
    result = sh(project, "record slash && title && table")
    assert result.returncode == 0, result.stderr
    assert "hyperparameters/paths.out/" in (project / "__statistic__" / "table" / "record.csv").read_text()


# --- 13. what a killed predecessor left behind
def test_temporary_files_of_killed_writers_are_cleared(project, tmp_path):
    write_record(project, "good", 0)
    lists = project / "__statistic__" / "exper-list"
    lists.mkdir(parents=True)
    dead = 2**22 + 1  # above the largest pid_max Linux allows: no process has it
    stale = lists / f".record.txt.{dead}.1.tmp"
    stale.write_text("torn")
    assert sh(project, "record good").returncode == 0
    assert not stale.exists()
    base = Path(tempfile.gettempdir())
    left, used = base / f"exper-code-{dead}-left", base / f"exper-code-{dead}-used"  # launchers killed with -9
    for path in (left, used):
        path.mkdir(exist_ok=True)
    # a training that outlived its killed launcher still runs from that launcher's copy of the code
    training = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(used / "code" / "main.py")])
    try:
        assert sh(project, "run t -f").returncode == 0
        assert not left.exists() and used.is_dir()
    finally:
        training.kill()
        training.wait()
        shutil.rmtree(used)


# --- 14. results on another disk
@pytest.mark.slow
def test_linked_result_data_and_statistic_folders_work(project, tmp_path):
    for name in ("__result__", "__data__", "__statistic__"):
        (tmp_path / name).mkdir()
        os.symlink(tmp_path / name, project / name)
    result = sh(project, "run linked -f && record linked && table")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "__result__" / "linked" / "0" / "statistic.json").exists()
    assert "linked" in sh(project, "expls").stdout
    assert not math.isnan(statistic(project, "linked", 0)["metrics"]["val/mse"])
