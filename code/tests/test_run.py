"""run, con, rerun, expls, expels through the real shell functions, in real git projects."""
import csv
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from conftest import commit, git, kill_tree, refused, set_config, sh, start, statistic, wait_for
from utils.runs import status


def rows(project, tag, id_):
    with open(Path(project) / "__result__" / tag / str(id_) / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_run_records_everything(project):
    result = sh(project, "run first -f")
    assert result.returncode == 0, result.stderr
    folder = project / "__result__" / "first" / "0"
    s = statistic(project, "first", 0)
    head = git(project, "rev-parse", "HEAD")
    assert s["schema"] == 1 and s["tag"] == "first" and s["id"] == 0 and s["status"] == "finished"
    assert s["commit"] == head and s["subject"] == "start from the template"
    assert s["seed"] == int((project / "code" / "seed").read_text()) and s["fixed_seed"] is True
    assert s["command"] == "run first -f" and isinstance(s["pid"], int)
    assert s["started"] <= s["ended"] and s["duration_s"] > 0 and len(s["sessions"]) == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", s["started"])
    for key in ("hostname", "user", "os", "python", "torch", "cuda", "gpus", "cpu", "memory_gb",
                "visible_devices", "world_size"):
        assert key in s["host"]
    assert s["host"]["torch"].startswith("2.13.0") and s["host"]["world_size"] == 1
    h = s["hyperparameters"]
    assert h["epochs"] == 2 and h["lr_encoder"] == 0.05 and h["best_metric"] == "val/mse"
    assert all(not k.startswith("_") for k in h)
    m = s["metrics"]
    assert m["epoch"] == 2 and m["step"] == 36 and m["val/mse"] > 0 and m["test/mse"] > 0 and m["train/mse"] > 0
    assert m["train/rmse"] == pytest.approx(m["train/mse"] ** 0.5)
    assert m["test/rmse"] == pytest.approx(m["test/mse"] ** 0.5)
    assert m["val/mse_best"] <= m["val/mse"] and m["train/lr_head"] == pytest.approx(0.01 * 0.9)
    assert re.fullmatch(r"[0-9a-f]{64}", s["weights_sha256"]) and s["error"] is None

    table = rows(project, "first", 0)
    epochs = [r for r in table if r["val/mse"]]
    assert [(r["epoch"], r["step"]) for r in epochs] == [("1", "18"), ("2", "36")]
    steps = [(r["step"], bool(r["val/mse"])) for r in table]
    assert len(steps) == len(set(steps))
    assert [int(r["step"]) for r in table] == sorted(int(r["step"]) for r in table)
    # rows every 5 steps from each epoch's start
    assert [r["step"] for r in table if r["train/mse_step"]] == ["5", "10", "15", "23", "28", "33"]
    assert all(float(r["train/rmse_step"]) == pytest.approx(float(r["train/mse_step"]) ** 0.5)
               for r in table if r["train/mse_step"])
    assert float(epochs[-1]["val/mse"]) == pytest.approx(m["val/mse"])

    log = (folder / "log").read_text()
    assert "epoch 2/2" in log and "finished: weights_sha256" in log and "\r" not in log
    assert "epoch 2/2" in result.stdout  # shown on the terminal too
    assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    ckpt = folder / "checkpoint"
    assert os.readlink(ckpt / "epoch_last.pth") == "epoch_2.pth" and (ckpt / "epoch_2.pth").exists()
    assert not os.path.isabs(os.readlink(ckpt / "epoch_best.pth")) and (ckpt / "epoch_best.pth").exists()
    assert (project / "__statistic__" / "exper-list" / "finished.txt").read_text() == "first/0\n"
    assert git(project, "cat-file", "-t", "first") == "tag"  # annotated
    assert git(project, "rev-parse", "first^{commit}") == head


def test_ids_seeds_and_determinism(project):
    for _ in range(2):
        assert sh(project, "run same -f").returncode == 0
    for _ in range(2):
        assert sh(project, "run same").returncode == 0
    a, b, c, d = (statistic(project, "same", i) for i in range(4))
    assert (a["id"], b["id"]) == (0, 1)
    assert a["weights_sha256"] == b["weights_sha256"] and a["metrics"] == b["metrics"]
    assert c["fixed_seed"] is False and c["seed"] != d["seed"]
    assert c["weights_sha256"] != d["weights_sha256"]
    assert git(project, "tag") == "same"


def test_sigint_then_con_is_exact(project):
    set_config(project, epochs=4, checkpoint_every_steps=0, pause=0.01)
    commit(project, "four epochs")
    reference = sh(project, "run whole -f")
    assert reference.returncode == 0, reference.stderr
    expected = statistic(project, "whole", 0)
    git(project, "tag", "-a", "-m", "same commit", "cut")

    proc = start(project, "run cut -f")
    wait_for(lambda: (project / "__result__/cut/0/metrics.csv").exists()
             and len(rows(project, "cut", 0)) >= 6)  # inside the second epoch
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    s = statistic(project, "cut", 0)
    assert s["status"] == "interrupted" and (project / "__result__/cut/0/checkpoint/epoch_last.pth").exists()

    result = sh(project, "con cut")
    assert result.returncode == 0, result.stderr
    s = statistic(project, "cut", 0)
    assert s["status"] == "finished" and len(s["sessions"]) == 2
    assert s["weights_sha256"] == expected["weights_sha256"]
    assert s["metrics"] == expected["metrics"]
    assert "----- continued from epoch" in (project / "__result__/cut/0/log").read_text()
    keys = [(r["step"], bool(r["val/mse"])) for r in rows(project, "cut", 0)]
    assert len(keys) == len(set(keys))
    assert rows(project, "cut", 0) == rows(project, "whole", 0)


def test_sigterm_interrupts(project):
    set_config(project, epochs=5, pause=0.02)
    commit(project, "long")
    proc = start(project, "run term -f")
    wait_for(lambda: (project / "__result__/term/0/metrics.csv").exists())
    os.kill(statistic(project, "term", 0)["pid"], signal.SIGTERM)  # `kill <pid>` of the training process
    proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert statistic(project, "term", 0)["status"] == "interrupted"


def test_exception_marks_crashed(project):
    set_config(project, fail_at_step=3)
    commit(project, "break the loop")
    result = sh(project, "run broken -f")
    assert result.returncode != 0
    s = statistic(project, "broken", 0)
    assert s["status"] == "crashed" and "boom at step 3" in s["error"]
    assert "RuntimeError: boom at step 3" in (project / "__result__/broken/0/log").read_text()
    refused = sh(project, "con broken")  # it never reached a checkpoint
    assert refused.returncode != 0 and "no checkpoint" in refused.stderr


def test_rerun_from_elsewhere_leaves_the_tree_alone(project):
    assert sh(project, "run base -f").returncode == 0
    (project / "code" / "notes.txt").write_text("later work\n")
    commit(project, "later work")
    (project / "scratch.txt").write_text("uncommitted\n")
    head, before = git(project, "rev-parse", "HEAD"), git(project, "status", "--porcelain")
    result = sh(project, "rerun base/0", cwd=project / "code")
    assert result.returncode == 0, result.stderr
    assert "reproduced base/0 exactly" in result.stdout
    assert git(project, "rev-parse", "HEAD") == head and git(project, "status", "--porcelain") == before
    assert git(project, "worktree", "list").count("\n") == 0
    again = statistic(project, "base", 1)
    assert again["seed"] == statistic(project, "base", 0)["seed"] and again["command"] == "rerun base/0"


def test_listings_and_dead(project):
    assert sh(project, "run listed -f").returncode == 0
    set_config(project, epochs=10, pause=0.02)
    commit(project, "long run")
    proc = start(project, "run killed")
    wait_for(lambda: (project / "__result__/killed/0/checkpoint/epoch_last.pth").exists())
    kill_tree(proc)  # no word from anyone: statistic.json still says running
    assert statistic(project, "killed", 0)["status"] == "running"
    out = sh(project, "expls").stdout
    assert re.search(r"killed\s+1 dead", out) and re.search(r"listed\s+1 finished", out)
    assert "long run" in out
    out = sh(project, "expels listed", cwd=project / "code" / "utils").stdout
    assert re.search(r"^0\s+finished\s+20201127", out, re.M) and "test/mse" in out and "val/mse_best" in out
    assert "dead" in sh(project, "expels killed").stdout
    assert sh(project, "exper expels killed").stdout == sh(project, "expels killed").stdout
    resumed = sh(project, "exper continue killed")
    assert resumed.returncode == 0, resumed.stderr
    assert statistic(project, "killed", 0)["status"] == "finished"


# --- errors: one line, non-zero, nothing created (conftest.refused)
@pytest.mark.parametrize("change", ["modify", "stage", "untracked"])
def test_dirty_tree_refused(project, change):
    if change == "untracked":
        (project / "new.py").write_text("x = 1\n")
    else:
        (project / "code" / "model.py").write_text((project / "code" / "model.py").read_text() + "# edit\n")
        if change == "stage":
            git(project, "add", "-A")
    path = "new.py" if change == "untracked" else "code/model.py"
    refused(project, "run dirty", f"would run without being recorded ({path}); commit them")


@pytest.mark.parametrize("tag", ["a b", "a;touch x", "-f", "_hidden", "a/b", "..", "x..y", "$(touch x)", "`touch x`",
                                 "a.lock", "../x"])
def test_bad_tag_names_refused(project, tag):
    refused(project, f"run '{tag}'" if "'" not in tag else f'run "{tag}"', "tag")
    assert not (project / "x").exists()


def test_tag_on_another_commit_refused(project):
    git(project, "tag", "-a", "-m", "old", "taken")
    (project / "code" / "seed").write_text("7\n")
    commit(project, "new seed")
    refused(project, "run taken", "marks another commit")


def test_config_that_does_not_import_refused(project):
    path = project / "code" / "config.py"
    path.write_text(path.read_text() + "oops = undefined_name + 1\n")
    commit(project, "broken config")
    refused(project, "run badconfig", "config.py does not import")
    set_config(project, epochs=0)
    path.write_text(path.read_text().replace("oops = undefined_name + 1\n", ""))
    commit(project, "bad value")
    refused(project, "run badvalue", "epochs must be")


def test_bad_seed_file_refused(project):
    (project / "code" / "seed").write_text("twelve\n")
    commit(project, "bad seed")
    refused(project, "run seeded -f", "code/seed")


def test_unknown_runs_and_finished_refused(project):
    refused(project, "con nothing", "no runs of tag")
    refused(project, "rerun nothing", "no git tag")
    refused(project, "expels nothing", "no runs of tag")
    assert sh(project, "run done -f").returncode == 0
    refused(project, "con done", "finished")
    refused(project, "con done/0", "finished")
    refused(project, "con done/7", "no run done/7")
    refused(project, "rerun done/7", "no run done/7")
    refused(project, "con done/x", "whole number")
    refused(project, "con done/-1", "whole number")


def test_usage_and_exper(project):
    for command in ("run", "con", "rerun", "re", "expls", "expels", "record", "title", "table", "itb"):
        result = sh(project, f"{command} -h")
        assert result.returncode == 0 and "usage" in result.stdout.lower(), command
    result = sh(project, "exper -h")
    assert result.returncode == 0 and "run <tag>" in result.stdout
    refused(project, "exper frobnicate", "unknown command")


def test_statistic_is_json_while_running(project):
    set_config(project, epochs=6, pause=0.005)
    commit(project, "longer")
    proc = start(project, "run live -f")
    seen, listed = set(), set()
    path = project / "__result__/live/0/statistic.json"
    wait_for(path.exists)
    while proc.poll() is None:
        record = json.loads(path.read_text())
        seen.add(record["status"])
        listed.add(status(record))  # as expls shows it: the launcher's pid until main.py's session begins
        time.sleep(0.01)
    proc.communicate()  # closes its pipes: left open, they are a ResourceWarning, an error under pytest.ini
    assert seen >= {"running"} and statistic(project, "live", 0)["status"] == "finished"
    assert "running" in listed and "dead" not in listed, listed
