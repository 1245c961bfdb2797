"""The surfaces a researcher meets every day: stop messages, deleting runs, listings, long values, headers.

Usage: python3 -m pytest code/tests/test_daily.py -q
"""
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import git, make_project, refused, sh, start, statistic, wait_for


def folder(project, tag, id_=0):
    return Path(project) / "__result__" / tag / str(id_)


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("daily") / "project", epochs=3, pause=0.02, checkpoint_every_steps=6)


@pytest.mark.slow
def test_ctrl_c_ends_by_naming_the_checkpoint_and_the_command_that_resumes(slow):
    proc = start(slow, "run stop -f")
    wait_for(lambda: (folder(slow, "stop") / "metrics.csv").exists())
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    said = re.search(r"stopped at step (\d+) with checkpoint (step_\d+\.pth); `con stop/0` resumes", out)
    assert said and said.group(2) == f"step_{said.group(1)}.pth", out
    assert (folder(slow, "stop") / "checkpoint" / said.group(2)).is_file()
    assert said.group(0) in (folder(slow, "stop") / "log").read_text()


@pytest.mark.slow
def test_kill_9_of_the_training_process_is_said_on_the_terminal_and_in_the_log(slow):
    proc = start(slow, "run nine -f")
    wait_for(lambda: (folder(slow, "nine") / "checkpoint" / "epoch_last.pth").exists())
    os.kill(statistic(slow, "nine", 0)["pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 137
    line = "error: nine/0: the training process was killed by SIGKILL (out of memory? kill -9?); `con nine/0` " \
           "resumes from its last checkpoint"
    assert line in err.splitlines()
    s = statistic(slow, "nine", 0)
    assert s["status"] == "crashed" and s["error"] == "the training process was killed by SIGKILL (out of memory? " \
                                                      "kill -9?)"
    log = (folder(slow, "nine") / "log").read_text()
    assert "----- session ended: the training process was killed by SIGKILL" in log
    assert sh(slow, "con nine").returncode == 0
    assert statistic(slow, "nine", 0)["status"] == "finished"


# --- deleting runs
def write_record(project, tag, id_, **fields):
    run = folder(project, tag, id_)
    run.mkdir(parents=True)
    base = {"tag": tag, "id": id_, "status": "finished", "seed": id_, "started": "2026-12-01T10:00:00+00:00",
            "hyperparameters": {"lr": 0.1, "epochs": 2}, "metrics": {"val/x": 0.5}, "sessions": []}
    (run / "statistic.json").write_text(json.dumps({**base, **fields}))


def test_expdel_asks_before_finished_runs_and_takes_them_out_of_every_list(project):
    git(project, "tag", "-a", "-m", "a tag", "gone")
    head = git(project, "rev-parse", "HEAD")
    write_record(project, "gone", 0)
    write_record(project, "gone", 1, status="crashed")
    write_record(project, "kept", 0)
    lists = project / "__statistic__" / "exper-list"
    lists.mkdir(parents=True)
    (lists / "finished.txt").write_text("gone/0\nkept/0\n")
    (lists / "paper.txt").write_text("# the figure\ngone/0  # the best\nkept/0\n")
    refused(project, "expdel gone", "1 of these runs finished and nothing was deleted")  # no terminal: no yes
    assert sh(project, "expdel gone/1").stdout.strip() == "deleted gone/1"  # crashed: no question
    done = sh(project, "expdel gone -y")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("deleted gone/0; taken out of the lists finished, paper; tag gone deleted "
                                   f"(its commit {head[:10]} stays in git)")
    assert not folder(project, "gone").parent.exists() and git(project, "tag") == ""
    assert git(project, "cat-file", "-t", head) == "commit"
    assert (lists / "paper.txt").read_text() == "# the figure\nkept/0\n"
    assert (lists / "finished.txt").read_text() == "kept/0\n"


def test_expdel_on_a_terminal_asks_and_takes_a_yes(project):
    write_record(project, "asked", 0)
    primary, secondary = pty.openpty()
    env = dict(os.environ, EXPER_ROOT=str(project))
    proc = subprocess.Popen([sys.executable, str(project / "code" / "utils" / "exper.py"), "expdel", "asked"],
                            stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    os.close(secondary)
    time.sleep(0.5)
    os.write(primary, b"y\n")
    out, err = proc.communicate(timeout=60)
    os.close(primary)
    assert proc.returncode == 0 and "deleted asked/0" in out, err
    assert not folder(project, "asked").exists()


def test_expdel_refuses_a_run_still_going(project):
    training = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "main.py"])
    try:
        write_record(project, "busy", 0, status="running", pid=training.pid, host={"hostname": os.uname().nodename})
        refused(project, "expdel busy -y", "busy/0 is still running; stop it first")
    finally:
        training.kill()
        training.wait()


# --- listings and records
def test_expels_says_how_far_each_run_got_and_a_dead_runs_duration(project):
    write_record(project, "prog", 0, status="running", pid=2**22 + 1, host={"hostname": os.uname().nodename},
                 metrics={}, sessions=[{"started": "2026-12-01T10:00:00+00:00", "ended": None}])
    os.utime(folder(project, "prog", 0) / "statistic.json", (0, 1_796_119_800))  # 10:10, ten minutes after it began
    write_record(project, "prog", 1, hyperparameters={"max_steps": 50}, metrics={"step": 20})
    out = sh(project, "expels prog").stdout
    assert re.search(r"^0\s+dead\s+0\s+2026-12-01 10:00\s+10:00\s+epoch 0/2", out, re.M), out
    assert re.search(r"^1\s+finished\s+1\s+.*step 20/50", out, re.M), out
    assert re.search(r"prog\s+1 dead, 1 finished\s+\S*\s+2026-12-01 10:00", sh(project, "expls").stdout)


def test_record_warns_about_runs_that_did_not_finish(project):
    write_record(project, "mixed", 0)
    write_record(project, "mixed", 1, status="interrupted")
    write_record(project, "mixed", 2, status="crashed")
    done = sh(project, "record mixed")
    assert done.returncode == 0 and "added 3 runs" in done.stdout
    assert done.stderr.strip() == "warning: added 2 runs that did not finish: mixed/1 (interrupted), mixed/2 (crashed)"


def test_long_values_are_cut_on_the_terminal_but_kept_in_the_files(project):
    long_tag = "t" * 10_000
    line = refused(project, f"run {long_tag}", "is not a valid tag name")
    assert len(line) < 400
    write_record(project, "big", 0, hyperparameters={"numbers": list(range(200_000))})
    done = sh(project, "record big && table --format plain")
    assert done.returncode == 0 and max(len(line) for line in done.stdout.splitlines()) < 300
    assert str(list(range(200_000))) in (project / "__statistic__" / "table" / "record.csv").read_text()


def test_a_header_on_screen_works_in_sort_and_where(project):
    for id_, (loss, lr) in enumerate([(0.3, 0.1), (0.2, 0.01)]):
        write_record(project, "h", id_, hyperparameters={"lr": lr}, metrics={"train/loss": loss, "val/loss": 1.0,
                                                                             "lr": lr / 2})
    titles = project / "__statistic__" / "title"
    titles.mkdir(parents=True)
    (titles / "record.json").write_text('[\n  "hyperparameters/lr",\n  "metrics/train/loss",\n'
                                        '  // "metrics/val/loss",\n  "metrics/lr",\n]\n')
    assert sh(project, "record h").returncode == 0
    done = sh(project, "table -s loss --full")
    assert done.returncode == 0, done.stderr
    assert "loss" in done.stdout.splitlines()[0].split()  # train/loss is headed `loss` once val/loss is hidden
    assert [line.split()[:2] for line in done.stdout.splitlines()[2:4]] == [["h", "1"], ["h", "0"]]
    where = sh(project, "table -w 'lr<0.05' --full")  # the hyperparameter lr, not the metric lr
    assert where.returncode == 0 and [line.split()[:2] for line in where.stdout.splitlines()[2:3]] == [["h", "1"]]


def test_con_completes_only_runs_that_can_be_continued_and_expels_completes_ids(project):
    write_record(project, "done", 0)
    write_record(project, "half", 0, status="interrupted")
    write_record(project, "half", 1)

    def complete(*words):
        env = dict(os.environ, EXPER_ROOT=str(project))
        script = project / "code" / "utils" / "statistic" / "complete.py"
        return subprocess.run([sys.executable, "-S", str(script), str(len(words) - 1), *words], env=env,
                              capture_output=True, text=True).stdout.split()

    assert complete("con", "") == ["half", "half/0"]
    assert complete("expels", "ha") == ["half", "half/0", "half/1"]
    assert complete("rerun", "") == ["done", "half"]
