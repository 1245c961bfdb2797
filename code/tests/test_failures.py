"""Failing runs lose nothing: an exception in the user's code, a NaN loss, a disk that fills up
while a checkpoint is written. Real trainings through the real shell.

Usage: python3 -m pytest code/tests/test_failures.py -q

The full disk is real, two ways: a small tmpfs mounted over the run's checkpoint folder (needs
root; skipped otherwise), so the checkpoint's write fails with ENOSPC while the log and
statistic.json, on the ordinary disk, go on; and RLIMIT_FSIZE (anywhere), with which the kernel
fails the same write with EFBIG. The run must handle both alike.
"""
import hashlib
import os
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import commit, git, set_config, sh, statistic


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def last_checkpoint(folder):
    link = Path(folder) / "checkpoint" / "epoch_last.pth"
    return os.readlink(link), torch.load(link, map_location="cpu", weights_only=False)


def finite_weights(saved):
    tensors = [v for state in saved["objects"].values() for v in state.values()
               if torch.is_tensor(v) and v.is_floating_point()]
    return tensors and all(torch.isfinite(t).all() for t in tensors)


def test_exception_in_user_code_keeps_the_run(project):
    set_config(project, fail_at_step=25)
    commit(project, "fail in the second epoch")
    result = sh(project, "run boom -f")
    assert result.returncode != 0
    folder = project / "__result__" / "boom" / "0"
    s = statistic(project, "boom", 0)
    assert s["status"] == "crashed" and "boom at step 25" in s["error"] and s["ended"] and s["metrics"]["epoch"] == 1
    log = (folder / "log").read_text()
    assert "epoch 1/2" in log and "RuntimeError: boom at step 25" in log and "Traceback" in log
    rows = (folder / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step") and any(r.startswith("1,18,") for r in rows)
    name, saved = last_checkpoint(folder)
    assert name == "epoch_1.pth" and finite_weights(saved)
    assert not list((folder / "checkpoint").glob(".*.tmp"))


@pytest.mark.parametrize("stop_on_nan", ["train/mse", None])
def test_nan_loss(project, stop_on_nan):
    set_config(project, stop_on_nan=stop_on_nan, nan_at_step=15, checkpoint_every_steps=5, epochs=1, best_metric=None)
    commit(project, "NaN from step 15")
    result = sh(project, "run nan -f")
    folder = project / "__result__" / "nan" / "0"
    s = statistic(project, "nan", 0)
    if not stop_on_nan:  # the switch off: the run goes on, its numbers say what happened
        assert result.returncode == 0 and s["status"] == "finished", result.stderr
        return
    assert result.returncode != 0
    assert s["status"] == "crashed" and s["error"] == "train/mse is not finite at step 15 (stop_on_nan)"
    assert "error: train/mse is not finite at step 15 (stop_on_nan)" in (folder / "log").read_text()
    name, saved = last_checkpoint(folder)  # step 15's checkpoint would hold NaN weights: never written
    assert name == "step_10.pth" and finite_weights(saved)
    assert not (folder / "checkpoint" / "step_15.pth").exists()


def fill_checkpoint_folder(folder, free):
    """Put the checkpoint folder on a tmpfs of its current content plus `free` bytes; False when
    mounting is not allowed here."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    kept = folder.with_name("checkpoint.kept")
    folder.rename(kept)
    folder.mkdir()
    used = sum(-(-p.stat().st_size // 4096) * 4096 for p in kept.iterdir() if p.is_file() and not p.is_symlink())
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={used + free}", "tmpfs", str(folder)],
                          capture_output=True)
    if done.returncode:
        folder.rmdir()
        kept.rename(folder)
        return False
    for p in kept.iterdir():
        if p.is_symlink():
            os.symlink(os.readlink(p), folder / p.name)
        else:
            shutil.copy2(p, folder / p.name)
    shutil.rmtree(kept)
    return True


def free_checkpoint_folder(folder):
    """Unmount the tmpfs, keeping what it holds: the disk has space again."""
    kept = folder.with_name("checkpoint.kept")
    shutil.copytree(folder, kept, symlinks=True)
    subprocess.run(["umount", str(folder)], check=True)
    folder.rmdir()
    kept.rename(folder)


@pytest.mark.slow
@pytest.mark.parametrize("fill", ["tmpfs", "rlimit"])
def test_disk_full_while_writing_a_checkpoint(project, fill):
    crash = "__data__/crash-at-step-25"  # session 1 stops in epoch 2, after epoch_1.pth
    set_config(project, epochs=2, fail_at_step=25, fail_while=os.path.basename(crash), width=512)
    commit(project, "a crash on request")
    reference = sh(project, "run ref -f")  # the same code and seed, never interrupted
    assert reference.returncode == 0, reference.stderr

    git(project, "tag", "-a", "-m", "same commit", "full")
    (project / crash).parent.mkdir(exist_ok=True)
    (project / crash).write_text("")
    assert sh(project, "run full -f").returncode != 0
    (project / crash).unlink()
    folder = project / "__result__" / "full" / "0"
    checkpoints = folder / "checkpoint"
    assert os.readlink(checkpoints / "epoch_last.pth") == "epoch_1.pth"
    before = {p.name: sha256(p) for p in checkpoints.iterdir() if not p.is_symlink()}
    size = (checkpoints / "epoch_1.pth").stat().st_size
    log_before = (folder / "log").read_text()

    if fill == "tmpfs" and not fill_checkpoint_folder(checkpoints, free=size // 2 // 4096 * 4096):
        pytest.skip("mounting a tmpfs is not allowed here (not root?); the rlimit case stands in")
    try:
        if fill == "tmpfs":
            result = sh(project, "con full")
        else:  # files beyond half a checkpoint fail with EFBIG (SIGXFSZ ignored, as a full disk would not signal)
            def limit():
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, resource.RLIM_INFINITY))

            script = f'. "{project}/code/source.sh" && cd "{project}" && con full'
            result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300,
                                    preexec_fn=limit)
        assert result.returncode != 0 and "Traceback" not in result.stderr  # the error line says it all
        s = statistic(project, "full", 0)
        why = "No space left on device" if fill == "tmpfs" else "File too large"
        assert s["status"] == "crashed", s
        assert s["error"].startswith(f"checkpoint epoch_2.pth could not be written: {why}"), s["error"]
        assert s["error"].endswith("epoch_last.pth still points at epoch_1.pth"), s["error"]
        assert os.readlink(checkpoints / "epoch_last.pth") == "epoch_1.pth"
        assert {p.name: sha256(p) for p in checkpoints.iterdir() if not p.is_symlink()} == before  # nothing torn left
        log = (folder / "log").read_text()
        assert log.startswith(log_before) and "error: checkpoint epoch_2.pth could not be written" in log
        finished = project / "__statistic__" / "exper-list" / "finished.txt"
        assert finished.read_text() == "ref/0\n"  # a run whose last checkpoint failed is not finished
    finally:
        if fill == "tmpfs":
            free_checkpoint_folder(checkpoints)

    again = sh(project, "con full")  # space again: the run resumes from epoch_1.pth and ends as if never stopped
    assert again.returncode == 0, again.stderr
    s = statistic(project, "full", 0)
    assert s["status"] == "finished" and len(s["sessions"]) == 3
    assert s["weights_sha256"] == statistic(project, "ref", 0)["weights_sha256"]
    assert (project / "__statistic__" / "exper-list" / "finished.txt").read_text() == "ref/0\nfull/0\n"
