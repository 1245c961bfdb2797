"""The table benchmark runs to the end on 100 runs and prints its figures (CI keeps it working)."""
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "table_scale.py"


def test_table_scale_quick():
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--repeat", "1"], capture_output=True, text=True,
                          check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    start, header, row = done.stdout.splitlines()
    assert start.startswith("python3 starts in ")
    assert header.split() == ["runs", "title", "s", "table", "s", "floor", "s", "title/floor", "table/floor"]
    runs, title, table, floor, *ratios = row.split()
    assert runs == "100" and float(title) > 0 and float(table) > 0 and float(floor) > 0
    assert all(r.endswith("x") and float(r[:-1]) > 0 for r in ratios)
