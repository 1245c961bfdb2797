"""How fast runs() reads many runs into a DataFrame. Usage: python3 code/bench/frames_scale.py [--quick] [--repeat R]

Makes N synthetic runs as table_scale.py makes them (realistic schema-1 statistic.json files, 20
hyperparameters and 10 metrics each; N = 1,000, --quick: 100) in a temporary project, then times,
side by side in rounds (the order alternating, so a busy machine slows both alike), each in a fresh
`python3 -c` process timed from its first line to its last:
  floor   `import pandas`, then read and parse every statistic.json in one loop
  runs()  `from utils.statistic import runs; runs()`: our modules, pandas, and the DataFrame
The figure is the median of the rounds' ratios runs() / floor. Goal: at most 2x. Also printed:
the same two in this one process, pandas already imported (the notebook's second call).
"""
import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CODE, median, on_path, paired
from table_scale import floor, make_runs

GOAL = 2.0

FLOOR = """import time; start = time.perf_counter()
import json, sys
import pandas
from pathlib import Path
for path in Path(sys.argv[1], "__result__").glob("*/*/statistic.json"):
    with open(path, "rb") as f:
        json.loads(f.read())
print(time.perf_counter() - start)
"""

RUNS = """import time; start = time.perf_counter()
import sys
sys.path.insert(0, sys.argv[2])
from utils.statistic import runs
frame = runs(root=sys.argv[1])
assert len(frame) == int(sys.argv[3]), len(frame)
print(time.perf_counter() - start)
"""


def child(script, *argv):
    """Seconds the script reports for itself in a fresh interpreter (its start-up left out)."""
    done = subprocess.run([sys.executable, "-c", script, *map(str, argv)], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        sys.exit(f"a timed process failed: {done.stderr.strip()}")
    return float(done.stdout)


def warm(root, n):
    """runs() in this process, pandas imported: seconds."""
    from utils.statistic import runs

    start = time.perf_counter()
    frame = runs(root=root)
    seconds = time.perf_counter() - start
    assert len(frame) == n, len(frame)
    return seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[2])
    p.add_argument("--quick", action="store_true", help="100 runs and 1 round only (for CI)")
    p.add_argument("--repeat", type=int, default=None, help="rounds of each measure (default 7, --quick 1)")
    args = p.parse_args(argv)
    on_path()
    n = 100 if args.quick else 1_000
    rounds = args.repeat or (1 if args.quick else 7)
    with tempfile.TemporaryDirectory(prefix="exper-bench-") as folder:
        root = Path(folder)
        make_runs(root, n, random.Random(0))
        fresh = paired({"floor": lambda: child(FLOOR, root), "runs": lambda: child(RUNS, root, CODE, n)},
                       "floor", rounds)["runs"]
        in_process = paired({"parse": lambda: floor(root), "runs": lambda: warm(root, n)}, "parse", rounds)["runs"]
    ratio = median([x / b for b, x in fresh])
    warm_ratio = median([x / b for b, x in in_process])
    print(f"{'runs':>7} {'floor s':>8} {'runs() s':>9} {'runs()/floor':>13}   fresh processes, median of {rounds}")
    print(f"{n:>7,} {median([b for b, _ in fresh]):>8.3f} {median([x for _, x in fresh]):>9.3f} {ratio:>12.2f}x")
    print(f"in one process, pandas imported: runs() {median([x for _, x in in_process]):.4f} s, "
          f"parse alone {median([b for b, _ in in_process]):.4f} s: {warm_ratio:.2f}x")
    print(f"goal (runs() within {GOAL:g}x of parsing plus importing pandas): {'met' if ratio <= GOAL else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
