"""How fast `title` and `table` answer for many runs. Usage: python3 code/bench/table_scale.py [--quick] [--repeat R]

Makes N synthetic runs (N = 100, 1,000, 10,000; --quick: 100 only) with realistic schema-1
statistic.json files (20 hyperparameters, 10 metrics, 5 seeds per tag, a few running and
crashed) in a temporary project, records them all, then times `title` and `table` as a user
runs them: `python3 code/utils/exper.py title|table` in a fresh process with EXPER_ROOT set. The
floor is reading and parsing every statistic.json in one Python loop, in this process.
Times are medians of R runs with a warm file cache; the interpreter's own start is printed
first, as it dominates small N. Goal: 10,000 runs in under 2 s and within 3x of the floor.
"""
import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXPER = Path(__file__).resolve().parents[1] / "utils" / "exper.py"
SEEDS_PER_TAG = 5


def statistic(tag, id_, rng):
    """One run's statistic.json as schema 1 has it; the runs of a tag share their config."""
    config = random.Random(tag)
    state = rng.choices(["finished", "running", "crashed"], weights=[90, 5, 5])[0]
    lr = config.choice([0.1, 0.03, 0.01, 0.003, 0.001])
    acc = rng.uniform(0.6, 0.99)
    started = f"2026-11-{rng.randint(1, 21):02d}T{rng.randint(0, 23):02d}:00:00.000+00:00"
    ended = None if state == "running" else started.replace(":00:00.000", ":47:12.345")
    return {
        "schema": 1, "tag": tag, "id": id_, "status": state,
        "commit": f"{rng.getrandbits(160):040x}", "subject": f"try {tag}",
        "seed": rng.randint(0, 2**31), "fixed_seed": False,
        "command": f"run {tag}", "pid": 4_000_000 + id_,  # no such process: a running one reads `dead`
        "started": started, "ended": ended, "duration_s": None if ended is None else rng.uniform(600, 9000),
        "sessions": [{"started": started, "ended": ended, "from_epoch": 0, "from_step": 0}],
        "host": {"hostname": socket.gethostname(), "user": "researcher", "os": "Linux-6.8", "python": "3.11.7",
                 "torch": "2.13.0", "cuda": "12.8", "gpus": ["NVIDIA H100 80GB HBM3"], "cpu": "x86_64",
                 "memory_gb": 128, "visible_devices": "0", "world_size": 1},
        "hyperparameters": {
            "lr": lr, "batch_size": config.choice([32, 64, 128]), "epochs": 30, "optim.name": "sgd",
            "optim.momentum": 0.9, "optim.weight_decay": config.choice([0.0, 5e-4]), "optim.nesterov": True,
            "model.width": config.choice([64, 128, 256]), "model.depth": config.randint(2, 8), "model.dropout": 0.1,
            "model.activation": "gelu", "data.name": "cifar10", "data.augment": ["crop", "flip"],
            "data.num_workers": 4, "scheduler.name": "cosine", "scheduler.warmup_epochs": 2, "amp": True,
            "grad_clip": None, "label_smoothing": 0.1, "log_every": 100,
        },
        "metrics": {
            "epoch": 30, "step": 11730, "train/loss": rng.uniform(0.01, 1), "train/acc": min(1.0, acc + 0.02),
            "val/loss": rng.uniform(0.1, 1.5), "val/acc": acc, "best/val/acc": acc + 0.005,
            "test/loss": rng.uniform(0.1, 1.5), "test/acc": acc - 0.01, "train/lr": lr * 0.01,
        },
        "weights_sha256": f"{rng.getrandbits(256):064x}",
        "error": "RuntimeError: CUDA out of memory" if state == "crashed" else None,
    }


def make_runs(root, n, rng):
    """N runs under N / 5 tags; returns the tags."""
    tags = [f"exp-{t:05d}" for t in range((n + SEEDS_PER_TAG - 1) // SEEDS_PER_TAG)]
    for i in range(n):
        tag, id_ = tags[i // SEEDS_PER_TAG], i % SEEDS_PER_TAG
        folder = root / "__result__" / tag / str(id_)
        folder.mkdir(parents=True)
        (folder / "statistic.json").write_text(json.dumps(statistic(tag, id_, rng), indent=2) + "\n")
    return tags


def command(root, *args):
    """Seconds one `python3 code/utils/exper.py ...` takes, from start to exit."""
    env = dict(os.environ, EXPER_ROOT=str(root))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(EXPER), *args], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(args[:2])} failed: {done.stderr.strip()}")
    return seconds


def floor(root):
    """Seconds to read and parse every statistic.json: what any table of these runs costs at least."""
    start = time.perf_counter()
    for path in (root / "__result__").glob("*/*/statistic.json"):
        with open(path, "rb") as f:
            json.loads(f.read())
    return time.perf_counter() - start


def interpreter_start(repeat):
    """Seconds a bare `python3 -c pass` takes: the part of each command no code of ours can save."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(n, repeat, rng):
    with tempfile.TemporaryDirectory(prefix="exper-bench-") as folder:
        root = Path(folder)
        tags = make_runs(root, n, rng)
        command(root, "record", *tags)
        title_path = root / "__statistic__" / "title" / "record.json"
        titles, tables, floors = [], [], []
        for _ in range(repeat):
            title_path.unlink(missing_ok=True)  # time making the title, not only finding it current
            titles.append(command(root, "title"))
            tables.append(command(root, "table"))
            floors.append(floor(root))
        return statistics.median(titles), statistics.median(tables), statistics.median(floors)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[2])
    p.add_argument("--quick", action="store_true", help="100 runs only (for CI)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each command; the median is shown (default 3)")
    args = p.parse_args(argv)
    rng = random.Random(0)
    print(f"python3 starts in {interpreter_start(args.repeat):.3f} s here (part of every command's time)")
    print(f"{'runs':>7} {'title s':>8} {'table s':>8} {'floor s':>8} {'title/floor':>12} {'table/floor':>12}")
    for n in [100] if args.quick else [100, 1_000, 10_000]:
        title, table, base = measure(n, args.repeat, rng)
        print(f"{n:>7,} {title:>8.3f} {table:>8.3f} {base:>8.3f} {title / base:>11.1f}x {table / base:>11.1f}x",
              flush=True)
    if not args.quick:
        met = max(title, table) < 2 and max(title, table) / base <= 3
        print(f"goal for 10,000 runs (under 2 s, within 3x of the floor): {'met' if met else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
