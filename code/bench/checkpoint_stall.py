"""How long a checkpoint stalls the training loop. Usage: python3 code/bench/checkpoint_stall.py [--quick] [--repeat R]

A model of Linear(2048, 2048) layers, 25.2M and 100.7M float32 parameters, the sizes other tools'
stalls are often measured at (--quick: Linear(1024, 1024) layers, 1.1M and 4.2M), after one
Adam step, so the state is the weights and two moments. Timed side by side in this process, into one temporary folder:

  sync    torch.save of that state to a file, flushed and fsync'd: the loop waits for all of it
  fresh   copying it to newly allocated host memory, as a copy-then-write-in-a-thread saver does
  stall   what the training loop waits for, done as Recorder.checkpoint does it: wait for the
          previous save (written by then), state.snapshot into the previous snapshot's tensors,
          hand it to the writer thread (utils/train/background.py), which runs checkpoint.save
  write   how long the writer thread then takes to put it on disk (the loop runs meanwhile)

`first` is the first save of a run, which allocates the host copy; the others are medians of R
saves. The last column is sync / stall.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.train import checkpoint, state
from utils.train.background import Background


def build(width, layers):
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(8, width)).square().mean().backward()
    optimizer.step()  # Adam creates its two moments on the first step
    optimizer.zero_grad(set_to_none=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return model, optimizer, scheduler


def measure(width, layers, repeat, folder):
    model, optimizer, scheduler = build(width, layers)
    objects = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    progress = {"epoch": 0, "batch": 0, "step": 0, "best": None}
    identity = {"config": {}, "commit": None, "seed": 0, "world_size": 1}
    rng = [state.rng_states()]
    writer, last = Background(), None

    def take(into):
        return state.snapshot(objects, progress, [{"pending": [], "sums": {}, "names": []}], rng, [None], identity,
                              into)

    def save(name):  # Recorder.checkpoint's steps
        nonlocal last
        writer.wait()
        last = take(last)
        writer.submit(checkpoint.save, folder / "checkpoint", name, last, False, 2)

    times = {"sync": [], "fresh": [], "stall": [], "write": []}
    for i in range(repeat + 1):
        start = time.perf_counter()
        with open(folder / "sync.pth", "wb") as f:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "progress": progress, "rng": state.rng_states()}, f)
            f.flush()
            os.fsync(f.fileno())
        times["sync"].append(time.perf_counter() - start)
        os.unlink(folder / "sync.pth")

        start = time.perf_counter()
        copy = take(None)
        times["fresh"].append(time.perf_counter() - start)
        del copy

        start = time.perf_counter()
        save(f"step_{i}.pth")
        times["stall"].append(time.perf_counter() - start)
        writer.wait()
        times["write"].append(time.perf_counter() - start - times["stall"][-1])
    writer.close()
    params = sum(p.numel() for p in model.parameters())
    return params, {k: (v[0], statistics.median(v[1:])) for k, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small models (CI: checks the bench runs)")
    p.add_argument("--repeat", type=int, default=5, help="saves timed per size after the first (default 5)")
    a = p.parse_args(argv)
    sizes = [(1024, 1), (1024, 4)] if a.quick else [(2048, 6), (2048, 24)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; seconds")
    print(f"{'params':>8} {'MB':>6} {'sync':>7} {'fresh':>7} {'stall':>7} {'first':>7} {'write':>7} {'sync/stall':>10}")
    with tempfile.TemporaryDirectory(prefix="exper-stall-") as tmp:
        for width, layers in sizes:
            params, t = measure(width, layers, a.repeat, Path(tmp))
            size = os.path.getsize(Path(tmp) / "checkpoint" / f"step_{a.repeat}.pth") / 1e6
            print(f"{params / 1e6:7.1f}M {size:6.0f} {t['sync'][1]:7.3f} {t['fresh'][1]:7.3f} {t['stall'][1]:7.3f} "
                  f"{t['stall'][0]:7.3f} {t['write'][1]:7.3f} {t['sync'][1] / t['stall'][1]:9.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
