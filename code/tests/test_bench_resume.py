"""The checkpoint-stall and kill-resume benchmarks run to the end in quick mode and print their figures.

Usage: python3 -m pytest code/tests/test_bench_resume.py -q   (figures themselves: run the scripts)
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench(name, *argv):
    done = subprocess.run([sys.executable, str(BENCH / name), "--quick", *argv], capture_output=True, text=True,
                          check=False, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def test_checkpoint_stall_quick():
    machine, header, *rows = bench("checkpoint_stall.py", "--repeat", "1")
    assert machine.startswith("torch ") and "threads" in machine
    assert header.split() == ["params", "MB", "sync", "fresh", "stall", "first", "write", "sync/stall"]
    assert len(rows) == 2
    for row in rows:
        params, size, *seconds, ratio = row.split()
        assert params.endswith("M") and float(size) > 0
        assert all(float(s) > 0 for s in seconds) and ratio.endswith("x") and float(ratio[:-1]) > 0


@pytest.mark.slow
def test_kill_resume_quick():
    lines = bench("kill_resume.py")
    assert re.fullmatch(r"kill instants seeded \d+; uninterrupted run: first checkpoint at [\d.]+ s, "
                        r"then [\d.]+ s to the end", lines[0])
    counted = [line for line in lines[1:-1] if not line.lstrip().startswith("(")]
    assert len(counted) == 3 and all(line.endswith(": exact") for line in counted)
    assert lines[-1] == "3/3 resumed exactly"
