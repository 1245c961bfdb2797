"""Several processes under torchrun (gloo on CPU, config.cpu_processes = 2), through the real commands.

Every test trains the tests' research for real in two processes; two "machines" are two clones of
the project on this one, joined by torchrun's static rendezvous on 127.0.0.1.
"""
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

import conftest
from conftest import alive, commit, created, descendants, git, make_project, set_config, sh, statistic, wait_for

pytestmark = pytest.mark.slow

# the threads of each of two processes (the launcher's share of the cores, unless already set);
# given explicitly where launches of one and of two processes per machine must agree
THREADS = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // 2))


STARTED = []


def start(project, command, env=None):
    """A command in its own session, as from a terminal (os.killpg(proc.pid, ...) is a Ctrl-C)."""
    proc = conftest.start(project, command, env)
    STARTED.append(proc)
    return proc


@pytest.fixture(autouse=True)
def no_leftovers():
    """A failed test leaves no training behind on a shared machine (ranks waiting on a dead
    peer would wait for gloo's 30-minute timeout)."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            for pid in descendants(proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.kill()
        proc.communicate()


def environ(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    except OSError:
        return {}


def rank_pids(proc):
    """{rank: pid} of the training processes started by proc."""
    return {int(environ(p)[b"RANK"]): p for p in descendants(proc.pid) if b"RANK" in environ(p)}


def rows(project, tag, id_=0):
    with open(Path(project) / "__result__" / tag / str(id_) / "metrics.csv") as f:
        return list(csv.DictReader(f))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def evaluate_checkpoint(project, path):
    """(val/mse, points) of a checkpoint's weights over the whole validation split, in one plain process."""
    script = f"""
import json
import shutil
from types import SimpleNamespace
import torch, torch.nn.functional as F
import config
from dataloader import points
from model import Encoder, Head
args = SimpleNamespace(**{{k: v for k, v in vars(config).items() if not k.startswith("_")}})
saved = torch.load({str(path)!r}, weights_only=True)["objects"]
encoder, head = Encoder(args), Head(args)
encoder.load_state_dict(saved["encoder"])
head.load_state_dict(saved["head"])
x, y = points(args).tensors
val = slice(len(x) * 3 // 4, len(x) * 7 // 8)
with torch.no_grad():
    prediction = head(encoder.eval()(x[val]))
print(json.dumps([F.mse_loss(prediction, y[val]).item(), len(y[val])]))
"""
    out = subprocess.run(["python3", "-c", script], cwd=project / "code", capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """A project training in two gloo processes, and its reference run ref/0 (-f)."""
    project = make_project(tmp_path_factory.mktemp("two") / "project", cpu_processes=2)
    result = sh(project, "run ref -f")
    assert result.returncode == 0, result.stderr
    return project


def test_two_processes_record_once_with_global_metrics(two):
    s = statistic(two, "ref", 0)
    assert s["status"] == "finished" and s["error"] is None
    assert s["host"]["world_size"] == 2 and len(s["host"]["devices"]) == 2
    assert all(d.endswith(" cpu") for d in s["host"]["devices"]) and s["host"]["threads"] == int(THREADS)
    folder = two / "__result__" / "ref" / "0"

    # global: val/mse is over all 48 validation points, not one rank's half
    mse, count = evaluate_checkpoint(two, folder / "checkpoint" / "epoch_2.pth")
    epoch2 = [r for r in rows(two, "ref") if r["val/mse"]][-1]
    assert count == 48 and float(epoch2["val/mse"]) == pytest.approx(mse, rel=1e-5) == s["metrics"]["val/mse"]

    # written once, by rank 0: 9 steps per epoch per rank -> rows at step 5, then the epoch
    table = rows(two, "ref")
    assert [(r["epoch"], r["step"], bool(r["val/mse"])) for r in table] == [
        ("0", "5", False), ("1", "9", True), ("1", "14", False), ("2", "18", True)]
    assert len(list((folder / "tensorboard").glob("events.out.tfevents.*"))) == 1
    log = (folder / "log").read_text()
    assert log.count("epoch 2/2") == 1 and log.count("finished: weights_sha256") == 1
    assert sorted(p.name for p in (folder / "checkpoint").iterdir()) == [
        "epoch_1.pth", "epoch_2.pth", "epoch_best.pth", "epoch_last.pth"]
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint", "log", "metrics.csv", "statistic.json",
                                                         "tensorboard"]
    assert (two / "__statistic__" / "exper-list" / "finished.txt").read_text().count("ref/") == 1


def test_two_process_runs_are_deterministic(two):
    result = sh(two, "run ref -f")
    assert result.returncode == 0, result.stderr
    first, again = statistic(two, "ref", 0), statistic(two, "ref", 1)
    assert again["weights_sha256"] == first["weights_sha256"] and again["metrics"] == first["metrics"]
    assert rows(two, "ref", 1) == rows(two, "ref", 0)


@pytest.fixture(scope="module")
def uneven(tmp_path_factory):
    """Ranks that draw different amounts of random numbers (as augmentation or variable lengths
    would): a resume must give each rank its own generators back. Its reference: whole/0."""
    project = make_project(tmp_path_factory.mktemp("uneven") / "project", cpu_processes=2, epochs=4,
                           checkpoint_every_steps=5, uneven_draws=True, pause=0.02)  # ranks draw apart
    result = sh(project, "run whole -f")
    assert result.returncode == 0, result.stderr
    return project


def same_as_whole(project, tag):
    s, whole = statistic(project, tag, 0), statistic(project, "whole", 0)
    assert s["status"] == "finished" and s["weights_sha256"] == whole["weights_sha256"]
    assert s["metrics"] == whole["metrics"]
    assert rows(project, tag) == rows(project, "whole")


def test_kill_9_then_con_is_exact(uneven):
    git(uneven, "tag", "-a", "-m", "same commit", "cut")
    proc = start(uneven, "run cut -f")
    wait_for(lambda: (uneven / "__result__/cut/0/checkpoint/epoch_last.pth").exists())
    pids = descendants(proc.pid)  # the whole machine goes: launcher, torchrun, both ranks
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    s = statistic(uneven, "cut", 0)
    assert s["status"] == "running" and s["metrics"].get("epoch", 0) < 4  # killed mid-run, without a word
    assert s["pid"] in pids and environ(s["pid"]) == {}  # rank 0's pid was recorded: it is gone, so `dead`
    assert "dead" in sh(uneven, "expels cut").stdout

    result = sh(uneven, "con cut")
    assert result.returncode == 0, result.stderr
    same_as_whole(uneven, "cut")
    assert statistic(uneven, "cut", 0)["host"]["world_size"] == 2


def test_sigterm_to_one_rank_stops_all_at_one_step(uneven):
    git(uneven, "tag", "-a", "-m", "same commit", "term")
    proc = start(uneven, "run term -f")
    wait_for(lambda: (uneven / "__result__/term/0/metrics.csv").exists())
    ranks = rank_pids(proc)
    assert sorted(ranks) == [0, 1] and statistic(uneven, "term", 0)["pid"] == ranks[0]
    os.kill(ranks[1], signal.SIGTERM)  # rank 0 never hears of it but must stop at the same step
    proc.communicate(timeout=120)
    assert proc.returncode == 143
    s = statistic(uneven, "term", 0)
    assert s["status"] == "interrupted" and "SIGTERM" in s["error"] and s["metrics"].get("epoch", 0) < 4
    assert not any(alive(p) for p in ranks.values())

    result = sh(uneven, "con term")
    assert result.returncode == 0, result.stderr
    same_as_whole(uneven, "term")


def test_ctrl_c_stops_every_rank_with_one_checkpoint(two):
    set_config(two, epochs=40, pause=0.02)
    commit(two, "long")
    proc = start(two, "run ctrlc -f")
    wait_for(lambda: (two / "__result__/ctrlc/0/metrics.csv").exists() and len(rows(two, "ctrlc")) >= 4)
    ranks = rank_pids(proc)
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: reaches the launcher's process group only
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    s = statistic(two, "ctrlc", 0)
    assert s["status"] == "interrupted" and "SIGINT" in s["error"]
    assert not any(alive(p) for p in ranks.values())
    stopped = s["metrics"]["epoch"]  # the stop checkpoint is the newest, one file, written once
    names = sorted(p.name for p in (two / "__result__/ctrlc/0/checkpoint").glob("*_*.pth"))
    last = os.readlink(two / "__result__/ctrlc/0/checkpoint/epoch_last.pth")
    assert last.startswith("step_") and last in names and f"epoch_{stopped}.pth" in names
    assert "Traceback" not in err and "SignalException" not in err  # a stop, not a failure
    assert (two / "__result__/ctrlc/0/log").read_text().count("SIGINT received") == 1


def test_a_rank_that_raises_crashes_the_run(two):
    set_config(two, epochs=2, pause=0.0, fail_at_step=12, fail_rank=1)
    commit(two, "rank 1 fails at step 12")
    try:
        result = sh(two, "run broken -f")
    finally:
        set_config(two, fail_at_step=0, fail_rank=-1)
        commit(two, "rank 1 works again")
    assert result.returncode == 1
    s = statistic(two, "broken", 0)
    assert s["status"] == "crashed" and s["error"].startswith("rank 1 (")
    assert "RuntimeError: boom at step 12" in s["error"]
    assert s["sessions"][-1]["ended"] is not None and s["metrics"]["epoch"] == 1
    log = (two / "__result__/broken/0/log").read_text()
    assert "----- rank 1 on" in log and 'raise RuntimeError(f"boom at step {step}")' in log

    # a con that main.py refuses on every rank (no checkpoint loads) leaves the record as it was
    for path in (two / "__result__/broken/0/checkpoint").glob("*.pth"):
        if not path.is_symlink():
            path.write_bytes(b"torn")
    refused_con = sh(two, "con broken")
    assert refused_con.returncode != 0 and "broken/0 has no checkpoint that loads" in refused_con.stderr
    assert statistic(two, "broken", 0) == s


def test_a_rank_killed_without_a_word_crashes_the_run(two):
    set_config(two, epochs=40, pause=0.02)
    commit(two, "long again")
    proc = start(two, "run oom -f")
    wait_for(lambda: (two / "__result__/oom/0/metrics.csv").exists())
    ranks = rank_pids(proc)
    os.kill(ranks[1], signal.SIGKILL)  # as the out-of-memory killer would
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    s = statistic(two, "oom", 0)
    assert s["status"] == "crashed" and s["error"].startswith("rank 1 ended without a word")
    assert not any(alive(p) for p in ranks.values())


def two_machines(node0, node1, command0, command1):
    """Start a command on each of two "machines" (node 1 waits for node 0 in the rendezvous)."""
    options = f"--nnodes=2 --master-addr=127.0.0.1 --master-port={free_port()}"
    env = {"OMP_NUM_THREADS": THREADS}
    joined = start(node1, command1, {**env, "EXPER_TORCHRUN": f"{options} --node-rank=1"})
    return start(node0, command0, {**env, "EXPER_TORCHRUN": f"{options} --node-rank=0"}), joined


def two_clones(tmp_path):
    node0 = make_project(tmp_path / "node0", cpu_processes=1)  # one process on each "machine"
    node1 = tmp_path / "node1"  # no shared file system: a clone of its own
    subprocess.run(["git", "clone", "-q", str(node0), str(node1)], check=True)
    git(node1, "config", "user.email", "test@example.com")
    git(node1, "config", "user.name", "Test")
    return node0, node1


def test_two_machines_make_one_run_and_continue_it(two, tmp_path):
    node0, node1 = two_clones(tmp_path)
    first, joined = two_machines(node0, node1, "run mn -f", "run mn")  # node 1 draws a seed of its own
    wait_for(lambda: (node0 / "__result__/mn/0/metrics.csv").exists())
    os.killpg(first.pid, signal.SIGINT)  # Ctrl-C on node 0 alone stops both machines at one step
    out, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    out, err = joined.communicate(timeout=120)
    assert joined.returncode == 0 and "joining the run that node 0 records" in out, err
    s = statistic(node0, "mn", 0)
    assert s["status"] == "interrupted" and s["host"]["world_size"] == 2 and len(s["host"]["devices"]) == 2
    assert s["seed"] == 20201127 and s["host"]["threads"] == int(THREADS)

    # node 1 has no run folder: it gets the checkpoint from rank 0
    first, joined = two_machines(node0, node1, "con mn", "con mn")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    joined.communicate(timeout=120)
    assert joined.returncode == 0
    s = statistic(node0, "mn", 0)
    assert s["status"] == "finished" and len(s["sessions"]) == 2
    # the same two ranks over the same data as one machine with two processes: the same run
    assert s["weights_sha256"] == statistic(two, "ref", 0)["weights_sha256"]
    assert s["metrics"] == statistic(two, "ref", 0)["metrics"]
    assert not (node1 / "__result__").exists() and git(node1, "tag") == ""  # the joining machine made nothing


def test_a_machine_with_other_code_is_refused(tmp_path):
    node0, node1 = two_clones(tmp_path)
    (node1 / "code" / "notes.txt").write_text("only here\n")
    commit(node1, "a commit node 0 does not have")
    first, joined = two_machines(node0, node1, "run other -f", "run other")
    out, err = first.communicate(timeout=300)
    joined.communicate(timeout=120)
    assert first.returncode != 0 and joined.returncode != 0
    assert "rank 1 on" in err and "check out the same commit on every machine" in err and "Traceback" not in err
    assert not (node0 / "__result__").exists() and git(node0, "tag") == ""  # refused before training: nothing kept


# --- refused before anything is created
def refused(project, command, words, env):
    before = created(project)
    result = sh(project, command, env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr
    assert created(project) == before


@pytest.mark.parametrize("options, words", [
    ("--nnodes=2 --master-addr=10.0.0.1 --master-port=29500", "--node-rank"),
    ("--nnodes 2 --node_rank first", "whole number"),
])
def test_several_machines_need_a_node_rank(tmp_path, options, words):
    project = make_project(tmp_path / "project", cpu_processes=2)
    for command in ("run nodes -f", "con nodes", "rerun nodes"):
        refused(project, command, words, {"EXPER_TORCHRUN": options})


def test_con_with_another_number_of_processes_is_refused(two):
    run = two / "__result__" / "ref" / "0"
    record = statistic(two, "ref", 0)
    folder = two / "__result__" / "half" / "0"  # an interrupted two-process run, as its record says
    folder.mkdir(parents=True)
    (folder / "checkpoint").mkdir()
    shutil.copy(run / "checkpoint" / "epoch_1.pth", folder / "checkpoint" / "epoch_1.pth")
    os.symlink("epoch_1.pth", folder / "checkpoint" / "epoch_last.pth")
    (folder / "statistic.json").write_text(json.dumps({**record, "tag": "half", "status": "interrupted"}))
    git(two, "tag", "-a", "-m", "half", "half", record["commit"])
    # three visible devices would make three processes, on a machine with or without GPUs
    refused(two, "con half", "trained with 2 process(es) and con would start 3", {"CUDA_VISIBLE_DEVICES": "0,1,2"})
