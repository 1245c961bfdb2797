"""What recording costs a training loop. Usage: python3 code/bench/overhead.py [--quick] [--example] [--steps N]
[--rounds R] [--processes P]

Also: python3 code/bench/overhead.py --switches [--quick]: the example's own samples per second
(model.py, dataloader.py, epoch.py, config.py's values) on this machine's device with each of
config.py's switches: amp (mixed precision), torch_compile, both; and its data loading alone (the
loader's batches copied to the device), to show what share of the training's time it takes.

The template's loop as main.py runs it: epoch.train_epoch with main.py's after_step hook, the
Recorder on a real run folder in a temporary project (statistic.json, metrics.csv, TensorBoard
events written by its writer thread, the tqdm bar drawn to a terminal), epoch ends recorded,
checkpoints off and on. Against it: the same loop with after_step doing nothing (bare), a
second bare loop (what noise looks like), and two peers: appending .item() values to a Python
list (the floor of any recording) and torch's SummaryWriter.add_scalar every step.

A tiny MLP on one torch thread (about 330 µs per step), where any cost per step shows most; with
--example, the example's own CNN (model.py, config.py's sizes) on torch's threads, as a run
trains it (about 2.2 ms per step here), where the same cost is a share of a real step. Each
variant runs right beside a bare loop, round after round (see common.py); a figure is the median
over rounds of the pair's ratio, for the wall time and for the process's CPU time, with the
middle half of the wall ratios beside it (on a shared machine a pair differs by a percent or two
either way: more rounds narrow the median). The rounds are shared among several processes run
one after another and pooled: one process's figures lean a few percent one way or the other for
as long as it lives (likely how it laid out its memory), so one process is one draw of that;
each process's own median is printed too. The template's own time comes from runs of its own
where each of its calls is timed, plus the writer thread's CPU: what it spends, less noisy than
the side-by-side figure but blind to what it does to the loop's caches. Goals: at most 1.03x
when logging every step, 1.01x at the shipped log_every_steps.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

import torch
from common import median, on_path, paired
from torch import nn

on_path()

import config  # code/ is on the path from here on
import state
from args_process import process
from epoch import train_epoch
from main import build_optimizer, build_scheduler
from utils import distributed
from utils.recorder import Recorder
from utils.statistic.run_record import hyperparameters

EPOCHS = 2  # the first epoch's end does once-per-run work, the second is any epoch's
SHIPPED = config.log_every_steps


class Terminal:
    """stderr as tqdm sees it in a terminal (so the bar is drawn), written to /dev/null."""

    def __init__(self):
        self.file = open(os.devnull, "w")

    def write(self, text):
        return self.file.write(text)

    def flush(self):
        self.file.flush()

    def isatty(self):
        return True

    def fileno(self):
        return self.file.fileno()


class Clock:
    """Wall time and the process's CPU time (all its threads: the writer's work counts too)."""

    def __init__(self):
        self.wall = self.cpu = 0.0
        self.resume()

    def resume(self):
        self.started = time.perf_counter(), time.process_time()

    def pause(self):
        """Count the time since resume(); returns its wall seconds."""
        wall, cpu = time.perf_counter() - self.started[0], time.process_time() - self.started[1]
        self.wall, self.cpu = self.wall + wall, self.cpu + cpu
        return wall

    def stop(self):
        self.pause()
        return self.wall, self.cpu


def run_args(root, id_, **changes):
    """(args, config values) of run bench/<id_> in the project `root`, config.py's values changed,
    as main.py has them when `run` starts it (the identity travels in EXPER_* variables)."""
    os.environ.update(EXPER_ROOT=str(root), EXPER_RUN_DIR=f"{root}/__result__/bench/{id_}", EXPER_TAG="bench",
                      EXPER_ID=str(id_), EXPER_SEED="1", EXPER_FIXED_SEED="1", EXPER_COMMIT="0" * 40,
                      EXPER_SUBJECT="bench", EXPER_COMMAND="run bench", EXPER_RESUME="0")
    values = {k: v for k, v in vars(config).items() if not k.startswith("_")}
    values.update(changes)
    os.makedirs(os.environ["EXPER_RUN_DIR"], exist_ok=True)
    args = process(SimpleNamespace(**values))
    distributed.setup(args, hyperparameters(SimpleNamespace(**values)))  # as main.py: one process here
    return args, values


def tiny_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def example_model():
    """model.py's CNN with config.py's sizes: it takes the same 8x8 images as the tiny MLP."""
    from model import Net

    return Net(SimpleNamespace(channels=config.channels, hidden=config.hidden, dropout=config.dropout))


class Bench:
    def __init__(self, root, steps, model=tiny_mlp):
        torch.manual_seed(0)
        self.root, self.per_epoch = root, steps // EPOCHS
        self.model = model()
        self.initial = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.batches = [(torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))) for _ in range(self.per_epoch)]
        self.runs = 0
        self.once = {"start": [], "first": [], "end": []}  # seconds of what a run does once, not per step
        self._timer_cost = self._bar_cost = None

    def args(self, log_every_steps=SHIPPED, checkpoint_every_steps=0):
        """The run's arguments as main.py gets them, for a new run folder of the temporary project."""
        self.runs += 1
        return run_args(self.root, self.runs, epochs=EPOCHS, device="cpu", progress_bar=True,
                        log_every_steps=log_every_steps, checkpoint_every_steps=checkpoint_every_steps)

    def fresh(self, args):
        self.model.load_state_dict(self.initial)
        optimizer = build_optimizer(self.model, args)
        scheduler = build_scheduler(optimizer, args, self.per_epoch)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        return optimizer, scheduler, scaler

    def bare(self):
        args, _ = self.args()
        optimizer, scheduler, scaler = self.fresh(args)

        def after_step(loss, correct, count):
            pass

        clock = Clock()
        for _ in range(EPOCHS):
            train_epoch(self.model, self.batches, optimizer, scheduler, scaler, args, after_step)
        return clock.stop()

    def floor(self):
        """PEERS.md's floor: every value read with .item() into a list, dumped as JSON at the end."""
        args, _ = self.args()
        optimizer, scheduler, scaler = self.fresh(args)
        rows = []

        def after_step(loss, correct, count):
            rows.append((loss.item(), correct.item() / count, scheduler.get_last_lr()[0]))

        clock = Clock()
        for _ in range(EPOCHS):
            train_epoch(self.model, self.batches, optimizer, scheduler, scaler, args, after_step)
        with open(os.path.join(args.run_dir, "rows.json"), "w") as f:
            json.dump(rows, f)
        return clock.stop()

    def summary_writer(self):
        """The peer: torch.utils.tensorboard's SummaryWriter, the same 4 scalars every step."""
        from torch.utils.tensorboard import SummaryWriter

        args, _ = self.args()
        optimizer, scheduler, scaler = self.fresh(args)
        writer = SummaryWriter(os.path.join(args.run_dir, "tensorboard"))
        progress = {"epoch": 0, "step": 0}

        def after_step(loss, correct, count):
            progress["step"] += 1
            step = progress["step"]
            writer.add_scalar("train/loss_step", loss.item(), step)
            writer.add_scalar("train/acc_step", correct.item() / count, step)
            writer.add_scalar("lr", scheduler.get_last_lr()[0], step)
            writer.add_scalar("epoch", progress["epoch"], step)

        clock = Clock()
        for epoch in range(EPOCHS):
            progress["epoch"] = epoch
            train_epoch(self.model, self.batches, optimizer, scheduler, scaler, args, after_step)
        writer.close()
        return clock.stop()

    def template(self, log_every_steps, checkpoints, timing=False):
        """main.py's loop minus evaluation (the researcher's own cost, the same in both).

        What a run does once is timed apart, off the clock: its start, its first epoch's end
        (which traces the TensorBoard graph and widens metrics.csv by the epoch's columns) and
        its end. Each epoch's rows are on disk before the epoch ends, on the clock; the writes of
        the last epoch's end are left to the run's end (a run evaluates while they are written).
        Returns (wall, CPU) seconds on the clock; with timing, also the template's own seconds
        (its calls timed one by one: the runs compared side by side time only the epoch ends, so
        timers cost nothing per step there).
        """
        args, values = self.args(log_every_steps, self.per_epoch // 2 if checkpoints else 0)
        optimizer, scheduler, scaler = self.fresh(args)
        progress = {"epoch": 0, "batch": 0, "step": 0, "best": None}
        stderr, sys.stderr = sys.stderr, Terminal()
        try:
            begin = time.perf_counter()
            rec = Recorder(args, hyperparameters(SimpleNamespace(**values)))
            rec.start(progress, None, self.model, self.batches[0][0][:1])
            rec.bg.wait()  # the session's first files are written before the loop's clock starts
            self.once["start"].append(time.perf_counter() - begin)

            def snapshot(extra, into):
                return state.snapshot(self.model, optimizer, scheduler, scaler, progress, extra, into)

            inside = [0.0]  # seconds the loop's thread spends in the template's calls

            def timed(call, *args):
                begin = time.perf_counter()
                result = call(*args)
                inside[0] += time.perf_counter() - begin
                return result

            def after_step(loss, correct, count):  # main.py's
                progress["batch"] += 1
                progress["step"] += 1
                rec.step(loss, correct, count, scheduler.get_last_lr()[0], progress)
                if args.checkpoint_every_steps and progress["step"] % args.checkpoint_every_steps == 0:
                    rec.checkpoint(snapshot, f"step_{progress['step']}.pth")

            def after_step_timed(loss, correct, count):
                timed(after_step, loss, correct, count)

            writer = time.pthread_getcpuclockid(rec.bg._thread.ident)
            writer_cpu = -time.clock_gettime(writer)  # the writer thread's CPU seconds, on the clock
            clock = Clock()
            for epoch in range(EPOCHS):
                train_epoch(self.model, rec.progress_bar(self.batches, epoch), optimizer, scheduler, scaler, args,
                            after_step_timed if timing else after_step)
                metrics = {"epoch": epoch + 1, "step": progress["step"],
                           **timed(rec.epoch_train_metrics, progress)}
                progress.update(epoch=epoch + 1, batch=0)
                if epoch == 0:
                    rec.bg.wait()  # the epoch's rows: their writing counts in full
                    clock.pause()
                    writer_cpu += time.clock_gettime(writer)
                    begin = time.perf_counter()
                    rec.epoch_end(metrics)
                    rec.bg.wait()
                    self.once["first"].append(time.perf_counter() - begin)
                    writer_cpu -= time.clock_gettime(writer)
                    clock.resume()
                else:
                    timed(rec.epoch_end, metrics)
                if checkpoints:
                    timed(rec.checkpoint, snapshot, f"epoch_{epoch + 1}.pth")
            seconds = clock.stop()
            begin = time.perf_counter()
            rec.bg.wait()
            writer_cpu += time.clock_gettime(writer)  # the last writes count in the template's own time
            rec.finish({}, "0" * 64)
            self.once["end"].append(time.perf_counter() - begin)
            # the template's own time: its calls on the loop's thread (less the timer's own cost),
            # the progress bar's per-step cost, and all the writer thread's CPU, as if it ran on
            # the loop's thread (on a free second core it mostly does not delay the loop)
            steps = progress["step"]
            own = inside[0] - steps * self.timer_cost() + steps * self.bar_cost(rec) + writer_cpu
        finally:
            sys.stderr.file.close()
            sys.stderr = stderr
        return (*seconds, own) if timing else seconds

    def timer_cost(self):
        """Seconds that timing one after_step call adds (two perf_counter calls and an add)."""
        if self._timer_cost is None:
            total, n = [0.0], 100_000
            start = time.perf_counter()
            for _ in range(n):
                begin = time.perf_counter()
                total[0] += time.perf_counter() - begin
            self._timer_cost = (time.perf_counter() - start) / n
        return self._timer_cost

    def bar_cost(self, rec):
        """Seconds the tqdm progress bar adds to each step (iterating through it, drawing it)."""
        if self._bar_cost is None:
            items = range(200_000)
            start = time.perf_counter()
            for _ in items:
                pass
            plain = time.perf_counter() - start
            start = time.perf_counter()
            for _ in rec.progress_bar(items, 0):
                pass
            self._bar_cost = max(0.0, time.perf_counter() - start - plain) / len(items)
        return self._bar_cost


VARIANTS = [  # (name, what it is, method, arguments)
    ("bare", "bare loop: after_step does nothing", "bare", ()),
    ("bare2", "bare loop again (what noise looks like)", "bare", ()),
    ("floor", "peer floor: .item() into a Python list, JSON at the end", "floor", ()),
    ("sw", "peer: SummaryWriter.add_scalar, 4 scalars every step", "summary_writer", ()),
    ("every1", "template, log every step", "template", (1, False)),
    ("shipped", f"template, log every {SHIPPED} steps (shipped)", "template", (SHIPPED, False)),
    ("every1_ckpt", "template, log every step, checkpoints", "template", (1, True)),
    ("shipped_ckpt", f"template, log every {SHIPPED} steps, checkpoints", "template", (SHIPPED, True)),
]


SWITCHES = [("none", False, False), ("amp", True, False), ("torch_compile", False, True),
            ("amp + torch_compile", True, True)]


def switches(root, quick, rounds):
    """Samples per second of the example's training with each switch, epochs timed in turn."""
    from dataloader import build_loaders
    from model import Net

    args, _ = run_args(root, 0)
    loaders = build_loaders(args)
    chosen = SWITCHES if not quick or args.device.type == "cuda" else SWITCHES[:2]  # compiling takes minutes on CPU
    setups = {}
    for name, amp, compiled in chosen:
        torch.manual_seed(0)
        model = Net(args).to(args.device)
        run = SimpleNamespace(**{**vars(args), "amp": amp})
        optimizer = build_optimizer(model, run)
        scheduler = build_scheduler(optimizer, run, len(loaders.sampler))
        scaler = torch.amp.GradScaler(args.device.type, enabled=amp and args.amp_dtype == torch.float16)
        setups[name] = (torch.compile(model) if compiled else model, optimizer, scheduler, scaler, run)

    def epoch(name):
        model, optimizer, scheduler, scaler, run = setups[name]
        loaders.sampler.set_epoch(0)
        if args.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        train_epoch(model, loaders.train, optimizer, scheduler, scaler, run, lambda *step: None)
        if args.device.type == "cuda":
            torch.cuda.synchronize()
        return loaders.sizes["train"] / (time.perf_counter() - start)

    def loading():
        """The data side alone: the loader's batches copied to the device, as train_epoch does."""
        loaders.sampler.set_epoch(0)
        start = time.perf_counter()
        for inputs, targets in loaders.train:
            inputs = inputs.to(args.device, non_blocking=True)
            targets = targets.to(args.device, non_blocking=True)
        if args.device.type == "cuda":
            torch.cuda.synchronize()
        return loaders.sizes["train"] / (time.perf_counter() - start)

    trials = {**{name: lambda name=name: epoch(name) for name in setups}, "loading": loading}
    for trial in trials.values():  # compiles, warms up
        trial()
    rates = {name: [] for name in trials}
    for r in range(rounds):
        for name in trials if r % 2 == 0 else reversed(trials):
            rates[name].append(trials[name]())
    device = f"cpu, {torch.get_num_threads()} threads"
    if args.device.type == "cuda":
        device = torch.cuda.get_device_name(args.device)
    print(f"the example's training, {loaders.sizes['train']:,} images per epoch, batch {args.batch_size}, on {device}; "
          f"median of {rounds} epochs each, interleaved")
    none = median(rates["none"])
    for name in setups:
        rate = median(rates[name])
        print(f"  {name:<20} {rate:>10,.0f} samples/s {rate / none:>6.2f}x")
    # with num_workers = 0 the loop loads its own batches: their share of a step is what the model waits
    rate, fastest = median(rates["loading"]), max(median(rates[name]) for name in setups)
    print(f"  {'data loading alone':<20} {rate:>10,.0f} samples/s {rate / none:>6.2f}x "
          f"(at the fastest switch's rate, loading takes {fastest / rate:.1%} of the training's time)")


def measure(steps, rounds, example):
    """One process's figures: {"pairs": {variant: [[bare, its] (wall, CPU) of each round]},
    "owns": {variant: [own seconds per step]}, "once": {what: [seconds]}, "model": its name, "threads": n}."""
    label, model = ("the example's CNN", example_model) if example else ("tiny MLP", tiny_mlp)
    if not example:
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="exper-bench-") as folder:
        bench = Bench(folder, steps, model)
        trials = {name: (lambda m=method, x=extra: getattr(bench, m)(*x)) for name, _, method, extra in VARIANTS}
        pairs = paired(trials, "bare", rounds)
        # the template's own time, from runs of their own with its calls timed
        owns = {name: [bench.template(*extra, timing=True)[2] / steps for _ in range(max(1, rounds // 5))]
                for name, _, method, extra in VARIANTS if method == "template"}
    return {"pairs": pairs, "owns": owns, "once": bench.once, "threads": torch.get_num_threads(), "model": label}


def in_processes(steps, rounds, processes, example):
    """measure() in `processes` fresh processes one after another, their rounds pooled (see the
    module's docstring: one process alone is one draw of a lean that lasts as long as it does)."""
    if processes == 1:
        return [measure(steps, rounds, example)]
    per = max(1, round(rounds / processes))
    command = [sys.executable, __file__, "--measure", "--steps", str(steps), "--rounds", str(per)]
    command += ["--example"] if example else []
    measured = []
    for _ in range(processes):
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)  # its errors reach stderr
        if done.returncode != 0:
            sys.exit(f"error: a measuring process ({' '.join(command[1:])}) exited with code {done.returncode}")
        measured.append(json.loads(done.stdout))
    return measured


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[2])
    p.add_argument("--quick", action="store_true", help="200 steps, 1 round, 1 process (for CI)")
    p.add_argument("--example", action="store_true", help="the example's CNN on torch's threads, not the tiny MLP")
    p.add_argument("--steps", type=int, help="training steps per variant and round (default 2,000; --example 1,000)")
    p.add_argument("--rounds", type=int, help="rounds of pairs in all; medians are shown (default 30; --example 18)")
    p.add_argument("--processes", type=int, help="processes the rounds are shared among (default 6)")
    p.add_argument("--switches", action="store_true", help="the example's samples/s with amp and torch_compile")
    p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # one process's figures, as JSON
    a = p.parse_args(argv)
    if a.switches:
        with tempfile.TemporaryDirectory(prefix="exper-bench-") as folder:
            switches(folder, a.quick, a.rounds or (2 if a.quick else 10))
        return 0
    for name, least in (("steps", 2 * EPOCHS), ("rounds", 1), ("processes", 1)):  # an epoch's checkpoint is halfway
        if getattr(a, name) is not None and getattr(a, name) < least:
            p.error(f"--{name} must be at least {least}")
    # the example's steps take 7 times the tiny MLP's: fewer of them keep its run near 13 minutes
    steps = a.steps or (200 if a.quick else 1000 if a.example else 2000)
    rounds = a.rounds or (1 if a.quick else 18 if a.example else 30)
    if a.measure:
        print(json.dumps(measure(steps, rounds, a.example)))
        return 0
    processes = max(1, min(rounds, a.processes or (1 if a.quick else 6)))
    measured = in_processes(steps, rounds, processes, a.example)
    pairs = {name: [pair for m in measured for pair in m["pairs"][name]] for name in measured[0]["pairs"]}
    owns = {name: median(x for m in measured for x in m["owns"][name]) for name in measured[0]["owns"]}
    bare = median(b[0] for pair in pairs.values() for b, _ in pair) / steps
    model, threads = measured[0]["model"], measured[0]["threads"]
    print(f"{model}, {threads} torch thread{'s' if threads > 1 else ''}, {steps:,} steps ({EPOCHS} epochs) per run, "
          f"{len(pairs['bare2'])} round(s) of pairs in {processes} process(es); "
          f"bare loop {bare * 1e6:.0f} µs per step; checkpoints every {steps // EPOCHS // 2} steps and at epoch ends")
    print(f"{'variant':<58} {'+µs/step':>9} {'vs bare':>8} {'middle half':>14} {'CPU vs bare':>12} "
          f"{'own µs/step':>12} {'own vs bare':>12}")
    ratios, own_ratios = {}, {}
    for name, what, _, _ in VARIANTS[1:]:
        added = median(x[0] - b[0] for b, x in pairs[name]) / steps
        walls = sorted(x[0] / b[0] for b, x in pairs[name])
        ratios[name] = median(walls)
        spread = f"{walls[len(walls) // 4]:.3f}-{walls[len(walls) * 3 // 4]:.3f}"
        cpu = median(x[1] / b[1] for b, x in pairs[name])
        line = f"{what:<58} {added * 1e6:>+9.1f} {ratios[name]:>7.3f}x {spread:>14} {cpu:>11.3f}x"
        if name in owns:
            own_ratios[name] = 1 + owns[name] / bare
            line += f" {owns[name] * 1e6:>12.1f} {own_ratios[name]:>11.3f}x"
        print(line)
    once = {k: median(x for m in measured for x in m["once"][k]) * 1e3 for k in measured[0]["once"]}
    print(f"once per run, not per step (not in the figures above): session start {once['start']:.0f} ms, "
          f"first epoch end (TensorBoard graph, metrics.csv's columns) {once['first']:.0f} ms, "
          f"run end {once['end']:.0f} ms")
    alone = [(what, " ".join(f"{median(x[0] / b[0] for b, x in m['pairs'][name]):.3f}x" for m in measured))
             for name, what in (("bare2", "bare again"), ("every1", "log every step"),
                                ("shipped", f"every {SHIPPED} steps"))]
    print("each process alone, the median of its pairs (how far one process's figure may lead): "
          + " | ".join(f"{what} {each}" for what, each in alone))
    for how, figures in (("side by side", ratios), ("own time", own_ratios)):  # 4 places: 1.0304x is no 1.030x
        every1, shipped = figures["every1"], figures["shipped"]
        print(f"goals ({how}): log every step at most 1.03x ({'met' if every1 <= 1.03 else 'missed'}: "
              f"{every1:.4f}x), every {SHIPPED} steps at most 1.01x ({'met' if shipped <= 1.01 else 'missed'}: "
              f"{shipped:.4f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
