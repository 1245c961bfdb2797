"""rerun's verdict: exact, or which metrics differ by how much and what the runs recorded differently.

Usage: python3 -m pytest code/tests/test_verdict.py -q

Every difference here is a real one: a tag moved by `git tag -f` to a commit with another lr
(rerun runs the tag's code, so the same seed gives other weights), a rerun under another
CUDA_VISIBLE_DEVICES (recorded, harmless on CPU), and two finished runs of different commits
placed under one tag to call verdict() on them directly.
"""
import shutil

from conftest import commit, git, set_config, sh, statistic
from utils.launch.verdict import verdict


def test_exact_and_not_compared(project):
    assert sh(project, "run same -f").returncode == 0
    fixed = sh(project, "rerun same -f", env={"CUDA_VISIBLE_DEVICES": ""})  # -f: code/seed, like same/0
    assert fixed.returncode == 0, fixed.stderr
    out = fixed.stdout.splitlines()
    assert "reproduced same/0 exactly: same weights_sha256 and metrics" in out
    assert "  recorded differently: visible_devices '' vs None" in out  # said, though it changed nothing
    fresh = sh(project, "rerun same")  # a fresh seed: said before training, and no verdict after
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stderr.startswith("note: a fresh seed makes a new sample of same: it reproduces nothing")
    assert not [line for line in fresh.stdout.splitlines() if line.startswith(("reproduced ", "differs from "))]
    again = sh(project, "rerun same/2")  # that run's seed: compared with it only
    assert again.returncode == 0, again.stderr
    assert "reproduced same/2 exactly" in again.stdout and "same/0" not in again.stdout


def test_moved_tag_differs_and_says_why(project):
    assert sh(project, "run moved -f").returncode == 0
    old = statistic(project, "moved", 0)
    set_config(project, lr_encoder=0.01)
    commit(project, "smaller lr")
    git(project, "tag", "-f", "-a", "-m", "moved", "moved")
    result = sh(project, "rerun moved/0")
    assert result.returncode == 0, result.stderr
    new = statistic(project, "moved", 1)
    assert new["seed"] == old["seed"] and new["weights_sha256"] != old["weights_sha256"]
    lines = result.stdout.splitlines()
    at = lines.index("differs from moved/0:")
    report = lines[at + 1:]
    assert report[0] == "  weights_sha256 differs"
    a, b = new["metrics"]["test/mse"], old["metrics"]["test/mse"]
    assert f"  test/mse {a:.6g} vs {b:.6g} ({a - b:+.3g})" in report
    assert f"  recorded differently: commit {new['commit'][:10]} vs {old['commit'][:10]} (the tag was moved)" in report
    assert "  recorded differently: config lr_encoder 0.01 vs 0.05 (-0.04)" in report
    assert not any("torch" in line for line in report)  # the same torch, recorded the same


def test_verdict_of_two_runs_of_different_commits(project):
    """deterministic off and one torch thread in the second: recorded differently, and listed
    whatever the outcome."""
    assert sh(project, "run det -f", env={"OMP_NUM_THREADS": "2"}).returncode == 0
    set_config(project, deterministic=False)
    commit(project, "determinism off")
    assert sh(project, "run loose -f", env={"OMP_NUM_THREADS": "1"}).returncode == 0
    result = project / "__result__"
    shutil.copytree(result / "loose" / "0", result / "det" / "1")
    text = verdict(project, "det", 1).splitlines()
    det, loose = statistic(project, "det", 0), statistic(project, "det", 1)
    same = det["weights_sha256"] == loose["weights_sha256"] and det["metrics"] == loose["metrics"]
    assert text[0] == ("reproduced det/0 exactly: same weights_sha256 and metrics" if same else "differs from det/0:")
    assert "  recorded differently: config deterministic False vs True" in text
    assert "  recorded differently: threads 1 vs 2 (-1)" in text
    assert sum(line.startswith("  recorded differently: commit ") for line in text) == 1

    (result / "det" / "0" / "statistic.json").write_text("{ torn")  # a corrupt earlier run is skipped, not fatal
    assert verdict(project, "det", 1).startswith("det/1: no earlier finished run of det with seed")
