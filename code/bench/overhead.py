"""What recording costs a training loop. Usage: python3 code/bench/overhead.py [--quick] [--example] [--steps N]
[--gan-steps N] [--rounds R] [--processes P]

Also: python3 code/bench/overhead.py --switches [--quick]: the example's own samples per second
(model.py, dataloader.py, epoch.py, config.py's values) on this machine's device with each of
config.py's switches: amp (mixed precision), torch_compile, both; and its data loading alone (the
loader's batches copied to the device), to show what share of the training's time it takes.

The template's loop as main.py runs it: a real Run (utils/train/run.py) on a real run folder in
a temporary project (the identity in EXPER_* variables, as `run` hands it over), run.keep of the
recipe's objects, run.rounds(), run.batches(), run.step(values) every step, run.evaluated at
each round's end, which writes the round's row and a checkpoint (statistic.json, metrics.csv,
TensorBoard events by the run's writer thread, the tqdm bar drawn to a terminal), with
checkpoint_every_steps off and on, logging every step and at the shipped interval. Against it:
the same train_step calls over the same batches without the Run (bare), a second bare loop
(what noise looks like), and two peers: appending .item() values to a Python list (the floor of
any recording) and torch's SummaryWriter.add_scalar every step. A run's first epoch is short
and off the clock: its end does the run's once-only work (the first row widens metrics.csv,
the TensorBoard graph), timed apart; the clock runs over the two epochs after it, their round
ends and checkpoints included.

The example: epoch.py's train_step with main.py's optimizer, scheduler and scaler, reporting
train/loss and train/acc with weights and train/lr (what the template's fixed slots loss,
correct, count, lr carried before values were named). On a tiny MLP on one torch thread by
default, where any cost per step shows most; with --example, on the example's own CNN
(model.py, config.py's sizes) on torch's threads, as a run trains it. The gan recipe
(code/examples/gan): its generator and discriminator with an Adam each and its train_step,
which reports five named values, in the same rounds, beside a bare loop of its own. Five named
values against the example's, two ways, each a ratio of the same run: the gan recipe's overhead
against the example's, each beside its own bare loop (the gan's step is several of the example's,
so its ratio is the smaller for that alone), and on the example's own step, its values handed
over as five (as_five(): the gan's names and form, five 0-dim tensors each with its weight)
beside the same bare loop as the example's own values, like for like.

Each variant runs right beside its bare loop, round after round (see common.py); a figure is
the median over rounds of the pair's ratio, for the wall time and for the process's CPU time,
with the middle half of the wall ratios beside it (on a shared machine a pair differs by a
percent or two either way: more rounds narrow the median). The rounds are shared among several
processes run one after another and pooled: one process's figures lean a few percent one way or
the other for as long as it lives (likely how it laid out its memory), so one process is one
draw of that; each process's own median is printed too. The template's own time comes from runs
of its own where each of its calls is timed (run.step, run.evaluated, every step of the
run.batches() and run.rounds() iterators), plus the writer thread's CPU: what it spends, less
noisy than the side-by-side figure but blind to what it does to the loop's caches. Goals on the
example: at most 1.03x when logging every step, 1.01x at the shipped log_every_steps; five named
values cost no more than the example's values, as a ratio of the same run.
"""
import argparse
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from types import ModuleType, SimpleNamespace

import torch
from common import CODE, median, on_path, paired
from torch import nn

on_path()

import config  # code/ is on the path from here on: the example's config.py
from epoch import train_step
from main import build_optimizer, warmup_cosine
from utils.train import settings
from utils.train.run import Run, seed_everything

EPOCHS = 2  # timed epochs per run, after the short first one
SHIPPED = config.log_every_steps
FIRST = SHIPPED  # steps of a run's first epoch (off the clock): a whole logging interval, so its end sees every column
SEED = 1
WARM_UP = 2 * FIRST  # steps per epoch of the short runs that warm every variant up


def _module(name, path):
    """A recipe's module under a name of its own (the gan recipe's config.py, epoch.py and model.py
    share their names with the example's, which are on the path)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GAN = CODE / "examples" / "gan"
gan_config = _module("gan_config", GAN / "config.py")
gan_model = _module("gan_model", GAN / "model.py")
gan_epoch = _module("gan_epoch", GAN / "epoch.py")


def values_of(module, **changes):
    """A config module's public names, changed."""
    return {**{k: v for k, v in vars(module).items() if not k.startswith("_") and not isinstance(v, ModuleType)},
            **changes}


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


class Quiet:
    """Around a Run: its stdout (the log's copy for the terminal) to /dev/null, stderr a terminal
    tqdm draws to, and afterwards the bench's own stdout, stderr, signal handlers and logging back."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __enter__(self):
        self.saved = sys.stdout, sys.stderr, {s: signal.getsignal(s) for s in self.SIGNALS}
        self.devnull = sys.stdout = open(os.devnull, "w")
        sys.stderr = Terminal()
        return self

    def __exit__(self, *exc):
        if sys.stdout is not self.devnull:  # the Run's Tee (utils/train/logs.py): its log file stays open else
            sys.stdout.file.close()
        sys.stderr.file.close()
        sys.stdout, sys.stderr, handlers = self.saved
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        logging.getLogger().handlers.clear()
        self.devnull.close()


class Clock:
    """Wall time and the process's CPU time (all its threads: the writer's work counts too)."""

    def __init__(self):
        self.wall = self.cpu = 0.0
        self.started = time.perf_counter(), time.process_time()

    def stop(self):
        self.wall += time.perf_counter() - self.started[0]
        self.cpu += time.process_time() - self.started[1]
        return self.wall, self.cpu


_COSTS = []


def timer_costs():
    """(seconds that timing one call adds to what it measures, the same for one next() of an
    iterator, the list's own next() included: the bare loop iterates over the list too)."""
    if not _COSTS:
        n, clock = 200_000, time.perf_counter
        total = 0.0
        for _ in range(n):
            begin = clock()
            total += clock() - begin
        call = total / n
        items, total = iter([None] * n), 0.0
        for _ in range(n):
            begin = clock()
            next(items)
            total += clock() - begin
        _COSTS.extend((call, total / n))
    return _COSTS


class Timer:
    """Seconds the loop's thread spends inside the template's calls, less what timing them costs."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.inside, self.calls, self.nexts = 0.0, 0, 0

    def wrap(self, function):
        def timed(*args):
            begin = time.perf_counter()
            result = function(*args)
            self.inside += time.perf_counter() - begin
            self.calls += 1
            return result

        return timed

    def each(self, iterator):
        """The iterator's items, each next() timed (the template's generators do their work there)."""
        while True:
            begin = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.inside += time.perf_counter() - begin
                self.nexts += 1
                return
            self.inside += time.perf_counter() - begin
            self.nexts += 1
            yield item

    def own(self):
        call, each = timer_costs()
        return self.inside - self.calls * call - self.nexts * each


class Epochs:
    """A run's training batches: a short first epoch (FIRST batches), then the whole list each epoch.
    run.batches() tells it the epoch (set_epoch, as a DistributedSampler is told)."""

    def __init__(self, batches):
        self.batches, self.epoch = batches, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches[:FIRST] if self.epoch == 0 else self.batches)


def tiny_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def example_model():
    """model.py's CNN with config.py's sizes: it takes the same 8x8 images as the tiny MLP."""
    from model import Net

    return Net(SimpleNamespace(channels=config.channels, hidden=config.hidden, dropout=config.dropout))


class Example:
    """The example's training step (epoch.py) and its optimizer, scheduler and scaler (main.py) on a
    model; its values: train/loss and train/acc with their weights, and train/lr."""

    config = config
    label = "the example's values"

    def __init__(self, model, per_epoch):
        self.model, self.per_epoch = model, per_epoch
        self.initial = {k: v.clone() for k, v in model.state_dict().items()}
        self.batches = [(torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))) for _ in range(per_epoch)]
        self.evaluation = {"val/loss": (torch.tensor(2.3), 180), "val/acc": (torch.tensor(0.1), 180)}
        self.graph = (model, self.batches[0][0][:1])

    def fresh(self, args):
        """(the objects a checkpoint holds, the step: batch -> its named values), as a run starts."""
        args.amp_dtype = torch.bfloat16  # main.py's choice on the CPU
        self.model.load_state_dict(self.initial)
        optimizer = build_optimizer(self.model, args)
        scheduler = warmup_cosine(optimizer, self.per_epoch, FIRST + EPOCHS * self.per_epoch)
        scaler = torch.amp.GradScaler("cpu", enabled=False)

        def step(batch):
            return train_step(self.model, *batch, optimizer, scheduler, scaler, args)

        return {"model": self.model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}, step


def as_five(values):
    """The example's step values under the gan recipe's five names and in its form: five 0-dim
    tensors, each with its weight (its two tensors, each under several names; no train/lr)."""
    loss, acc = values["train/loss"], values["train/acc"]
    return {"train/loss_d": loss, "train/loss_g": loss, "train/d_x": acc, "train/d_g_z": acc, "train/d_g_z2": acc}


def five_of(step):
    """The step, its values as_five()."""
    def five(batch):
        return as_five(step(batch))

    return five


class Gan:
    """The gan recipe's generator and discriminator (examples/gan/model.py), an Adam each as its
    main.py makes them, and its train_step (examples/gan/epoch.py): five named values a step."""

    config = gan_config
    label = "the gan recipe's five values"

    def __init__(self, per_epoch):
        self.per_epoch = per_epoch
        args = SimpleNamespace(**values_of(gan_config))
        self.netG, self.netD = gan_model.Generator(args), gan_model.Discriminator(args)
        self.initial = [{k: v.clone() for k, v in m.state_dict().items()} for m in (self.netG, self.netD)]
        self.batches = [(torch.rand(32, 1, 8, 8) * 2 - 1,) for _ in range(per_epoch)]  # (real,), as its loader
        self.evaluation = {"val/d_x": (torch.tensor(0.5), 180), "val/d_g_z": (torch.tensor(0.5), 64)}
        self.graph = (self.netG, torch.zeros(1, args.latent))

    def fresh(self, args):
        for model, initial in zip((self.netG, self.netD), self.initial, strict=True):
            model.load_state_dict(initial)
        optG = torch.optim.Adam(self.netG.parameters(), lr=args.lr_g, betas=tuple(args.betas))
        optD = torch.optim.Adam(self.netD.parameters(), lr=args.lr_d, betas=tuple(args.betas))

        def step(batch):
            return gan_epoch.train_step(self.netG, self.netD, batch[0], optG, optD, args)

        return {"netG": self.netG, "netD": self.netD, "optG": optG, "optD": optD}, step


class Bench:
    """One recipe's loops: bare, the peers and the template's, in run folders of the project `root`."""

    runs = 0  # run ids, one sequence for every recipe (all are runs of the tag `bench`)

    def __init__(self, root, recipe):
        self.root, self.recipe = root, recipe
        self.loader = Epochs(recipe.batches)
        self.once = {"start": [], "first": [], "end": []}  # seconds of what a run does once, not per step

    def plain_args(self):
        """What the recipe's train_step reads, for the loops without a Run: its config, on the CPU."""
        return SimpleNamespace(**values_of(self.recipe.config, device=torch.device("cpu")))

    def fresh_bare(self):
        args = self.plain_args()
        seed_everything(SEED, args.deterministic)  # as the Run does
        return self.recipe.fresh(args)[1]

    def loop(self, step, after=None):
        """The first epoch off the clock, then EPOCHS epochs on it; after(values, epoch) each step."""
        for batch in self.recipe.batches[:FIRST]:
            step(batch)
        clock = Clock()
        for epoch in range(EPOCHS):
            for batch in self.recipe.batches:
                values = step(batch)
                if after is not None:
                    after(values, epoch)
        return clock

    def bare(self):
        return self.loop(self.fresh_bare()).stop()

    def floor(self):
        """The floor of any recording: every value read with .item() into a list, dumped as JSON at the end."""
        rows = []

        def after(values, epoch):
            rows.append({k: float(v[0] if type(v) is tuple else v) for k, v in values.items()})

        with tempfile.NamedTemporaryFile("w", dir=self.root, suffix=".json") as f:
            clock = self.loop(self.fresh_bare(), after)
            json.dump(rows, f)
            f.flush()
            return clock.stop()

    def summary_writer(self):
        """The peer: torch.utils.tensorboard's SummaryWriter, each value and the epoch every step."""
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(tempfile.mkdtemp(dir=self.root))
        steps = [0]

        def after(values, epoch):
            steps[0] += 1
            for name, v in values.items():
                writer.add_scalar(f"{name}_step", float(v[0] if type(v) is tuple else v), steps[0])
            writer.add_scalar("epoch", epoch, steps[0])

        clock = self.loop(self.fresh_bare(), after)
        writer.close()
        return clock.stop()

    def new_run(self, **changes):
        """A Run of a new run folder bench/<id> of the temporary project, as `run` starts main.py."""
        Bench.runs += 1
        folder = os.path.join(self.root, "__result__", "bench", str(Bench.runs))
        os.environ.update(EXPER_ROOT=str(self.root), EXPER_RUN_DIR=folder, EXPER_TAG="bench",
                          EXPER_ID=str(Bench.runs), EXPER_SEED=str(SEED), EXPER_FIXED_SEED="1",
                          EXPER_COMMIT="0" * 40, EXPER_SUBJECT="bench", EXPER_COMMAND="run bench", EXPER_RESUME="0")
        os.makedirs(folder)
        values = values_of(self.recipe.config, **{"epochs": 1 + EPOCHS, "max_steps": 0, "eval_every_steps": 0,
                                                  "device": "cpu", "progress_bar": True, **changes})
        return Run(SimpleNamespace(**values))

    def template(self, log_every_steps, checkpoints, five=False, timer=None):
        """main.py's loop, evaluation aside (the research's own cost, the same with or without the
        template): its round ends report fixed values. What a run does once is timed apart, off the
        clock: its start (the Run made, the session's first files), its first round's end (the first
        row widens metrics.csv, the TensorBoard graph is traced) and its end (run.finish). The clock
        holds the two epochs after the first, their round ends and checkpoints; the writing the
        last round's end asks for is left to the run's end (a run evaluates while it is written).
        Returns (wall, CPU) seconds on the clock; with a timer, also the template's own seconds:
        its calls as the timer has them, and all its writer thread's CPU from the clock's start on.
        five: the step's values as_five().
        """
        checkpoint_every = self.recipe.per_epoch // 2 if checkpoints else 0
        with Quiet():
            begin = time.perf_counter()
            run = self.new_run(log_every_steps=log_every_steps, checkpoint_every_steps=checkpoint_every,
                               **({"stop_on_nan": "train/loss_d"} if five else {}))
            objects, step = self.recipe.fresh(run.args)
            if five:
                step = five_of(step)
            run.keep(**objects)
            run.graph(*self.recipe.graph)
            writer = time.pthread_getcpuclockid(run.recorder.bg._thread.ident)
            record = run.step if timer is None else timer.wrap(run.step)
            evaluated = run.evaluated if timer is None else timer.wrap(run.evaluated)
            # a round's end (its row, statistic.json, the checkpoint) is timed apart from the steps: it
            # happens once a round, whatever the round's length, and the checkpoint's write in the writer
            ends, saves = Timer(), [0.0]
            rounds = run.rounds() if timer is None else ends.each(run.rounds())
            if timer is not None:
                save = run.recorder._save

                def timed_save(*arguments):
                    begin = time.thread_time()
                    try:
                        return save(*arguments)
                    finally:
                        saves[0] += time.thread_time() - begin

                run.recorder._save = timed_save
            for r in rounds:
                if r == 0:
                    run.recorder.wait()  # the session's first files are written before the loop starts
                    self.once["start"].append(time.perf_counter() - begin)
                elif r == 1:
                    run.recorder.wait()  # the first round's end, its writing done
                    self.once["first"].append(time.perf_counter() - begin)
                    writer_cpu = -time.clock_gettime(writer)
                    if timer is not None:
                        timer.reset()
                        ends.reset()
                        saves[0] = 0.0
                    clock = Clock()
                batches = run.batches(self.loader)
                for batch in batches if timer is None else timer.each(batches):
                    record(step(batch))
                evaluated(self.recipe.evaluation)
                if r == 0:
                    begin = time.perf_counter()
            seconds = clock.stop()
            begin = time.perf_counter()
            run.recorder.wait()
            writer_cpu += time.clock_gettime(writer)  # the last writes count in the template's own time
            run.finish()
            self.once["end"].append(time.perf_counter() - begin)
        # the writer thread's CPU as if it ran on the loop's thread (on a free core it mostly does not delay it);
        # with a timer: the steps' own seconds, then the round ends' (EPOCHS of them)
        return seconds if timer is None else (*seconds, timer.own() + writer_cpu - saves[0], ends.own() + saves[0])


VARIANTS = [  # (name, what it is, recipe, method, arguments)
    ("bare", "bare loop: train_step alone", "example", "bare", ()),
    ("bare2", "bare loop again (what noise looks like)", "example", "bare", ()),
    ("floor", "peer floor: .item() into a Python list, JSON at the end", "example", "floor", ()),
    ("sw", "peer: SummaryWriter.add_scalar, 4 scalars every step", "example", "summary_writer", ()),
    ("every1", "template, log every step", "example", "template", (1, False)),
    ("shipped", f"template, log every {SHIPPED} steps (shipped)", "example", "template", (SHIPPED, False)),
    ("every1_ckpt", "template, log every step, checkpoints", "example", "template", (1, True)),
    ("shipped_ckpt", f"template, log every {SHIPPED} steps, checkpoints", "example", "template", (SHIPPED, True)),
    ("five_every1", "template, log every step, as five values", "example", "template", (1, False, True)),
    ("five_shipped", f"template, log every {SHIPPED} steps, as five values", "example", "template",
     (SHIPPED, False, True)),
    ("gan_bare", "gan: bare loop", "gan", "bare", ()),
    ("gan_every1", "gan: template, log every step", "gan", "template", (1, False)),
    ("gan_shipped", f"gan: template, log every {SHIPPED} steps (shipped)", "gan", "template", (SHIPPED, False)),
]


SWITCHES = [("none", False, False), ("amp", True, False), ("torch_compile", False, True),
            ("amp + torch_compile", True, True)]


def switches(root, quick, rounds):
    """Samples per second of the example's training with each switch, epochs timed in turn."""
    from dataloader import build_loaders
    from model import Net

    os.environ.update(EXPER_ROOT=str(root), EXPER_RUN_DIR=os.path.join(root, "switches"), EXPER_TAG="bench",
                      EXPER_ID="0", EXPER_SEED=str(SEED))
    args = settings.derive(SimpleNamespace(**values_of(config)))  # the run's arguments: the device it picks
    cuda = args.device.type == "cuda"
    args.amp_dtype = torch.bfloat16 if not cuda or torch.cuda.is_bf16_supported() else torch.float16
    loaders = build_loaders(args)
    per_epoch = len(loaders.train)
    chosen = SWITCHES if not quick or cuda else SWITCHES[:2]  # compiling takes minutes on CPU
    setups = {}
    for name, amp, compiled in chosen:
        torch.manual_seed(SEED)
        model = Net(args).to(args.device)
        run = SimpleNamespace(**{**vars(args), "amp": amp})
        optimizer = build_optimizer(model, run)
        scheduler = warmup_cosine(optimizer, per_epoch, config.epochs * per_epoch)
        scaler = torch.amp.GradScaler(args.device.type, enabled=amp and args.amp_dtype == torch.float16)
        setups[name] = (torch.compile(model) if compiled else model, optimizer, scheduler, scaler, run)

    def epoch(name):
        model, optimizer, scheduler, scaler, run = setups[name]
        model.train()
        loaders.train.sampler.set_epoch(0)
        if cuda:
            torch.cuda.synchronize()
        start, images = time.perf_counter(), 0
        for inputs, targets in loaders.train:
            train_step(model, inputs, targets, optimizer, scheduler, scaler, run)
            images += len(targets)
        if cuda:
            torch.cuda.synchronize()
        return images / (time.perf_counter() - start), images

    def loading():
        """The data side alone: the loader's batches copied to the device, as train_step does."""
        loaders.train.sampler.set_epoch(0)
        start, images = time.perf_counter(), 0
        for inputs, targets in loaders.train:
            inputs = inputs.to(args.device, non_blocking=True)
            targets = targets.to(args.device, non_blocking=True)
            images += len(targets)
        if cuda:
            torch.cuda.synchronize()
        return images / (time.perf_counter() - start), images

    trials = {**{name: lambda name=name: epoch(name) for name in setups}, "loading": loading}
    for trial in trials.values():  # compiles, warms up
        images = trial()[1]
    rates = {name: [] for name in trials}
    for r in range(rounds):
        for name in trials if r % 2 == 0 else reversed(trials):
            rates[name].append(trials[name]()[0])
    device = torch.cuda.get_device_name(args.device) if cuda else f"cpu, {torch.get_num_threads()} threads"
    print(f"the example's training, {images:,} images per epoch, batch {args.batch_size}, on {device}; "
          f"median of {rounds} epochs each, interleaved")
    none = median(rates["none"])
    for name in setups:
        rate = median(rates[name])
        print(f"  {name:<20} {rate:>10,.0f} samples/s {rate / none:>6.2f}x")
    # with num_workers = 0 the loop loads its own batches: their share of a step is what the model waits
    rate, fastest = median(rates["loading"]), max(median(rates[name]) for name in setups)
    print(f"  {'data loading alone':<20} {rate:>10,.0f} samples/s {rate / none:>6.2f}x "
          f"(at the fastest switch's rate, loading takes {fastest / rate:.1%} of the training's time)")


def trials_of(benches):
    return {name: (lambda b=benches[recipe], m=method, x=extra: getattr(b, m)(*x))
            for name, _, recipe, method, extra in VARIANTS}


def measure(steps, gan_steps, rounds, example):
    """One process's figures: {"pairs": {variant: [[bare, its] (wall, CPU) of each round]},
    "owns": {variant: [own seconds per step]}, "once": {what: [seconds]}, "model": its name,
    "threads": n, "steps": {recipe: timed steps per run}}."""
    label, model = ("the example's CNN", example_model) if example else ("tiny MLP", tiny_mlp)
    if not example:
        torch.set_num_threads(1)
    os.environ.pop("EXPER_RANKS_DIR", None)  # no launcher waits for these runs
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="exper-bench-") as folder:
        net = model()
        benches = {"example": Bench(folder, Example(net, steps // EPOCHS)),
                   "gan": Bench(folder, Gan(gan_steps // EPOCHS))}
        # imports, first calls, the allocator's memory: every variant once, in short runs, before the rounds
        short = {"example": Bench(folder, Example(net, WARM_UP)), "gan": Bench(folder, Gan(WARM_UP))}
        for trial in trials_of(short).values():
            trial()
        beside = {name: "gan_bare" for name, _, recipe, _, _ in VARIANTS if recipe == "gan"}
        pairs = paired(trials_of(benches), "bare", rounds, warmup=0, beside=beside)
        timed = {recipe: bench.recipe.per_epoch * EPOCHS for recipe, bench in benches.items()}
        # the template's own time, from runs of their own with its calls timed: per step, and per round end
        owns, ends = {}, {}
        for name, _, recipe, method, extra in VARIANTS:
            if method == "template":
                timings = [benches[recipe].template(*extra, timer=Timer())[2:] for _ in range(max(1, rounds // 5))]
                owns[name] = [steps_own / timed[recipe] for steps_own, _ in timings]
                ends[name] = [round_ends / EPOCHS for _, round_ends in timings]
    return {"pairs": pairs, "owns": owns, "ends": ends, "once": benches["example"].once,
            "threads": torch.get_num_threads(), "model": label, "steps": timed}


def in_processes(steps, gan_steps, rounds, processes, example):
    """measure() in `processes` fresh processes one after another, their rounds pooled (see the
    module's docstring: one process alone is one draw of a lean that lasts as long as it does)."""
    if processes == 1:
        return [measure(steps, gan_steps, rounds, example)]
    measured = []
    for k in range(processes):  # the rounds shared as evenly as they go
        share = rounds // processes + (k < rounds % processes)
        command = [sys.executable, __file__, "--measure", "--steps", str(steps), "--gan-steps", str(gan_steps),
                   "--rounds", str(share), *(["--example"] if example else [])]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)  # its errors reach stderr
        if done.returncode != 0:
            sys.exit(f"error: a measuring process ({' '.join(command[1:])}) exited with code {done.returncode}")
        measured.append(json.loads(done.stdout))
    return measured


def verdict(ok):
    return "met" if ok else "missed"


def report(measured, processes):
    """Print the pooled figures of the measuring processes."""
    pairs = {name: [pair for m in measured for pair in m["pairs"][name]] for name in measured[0]["pairs"]}
    owns = {name: median(x for m in measured for x in m["owns"][name]) for name in measured[0]["owns"]}
    ends = {name: median(x for m in measured for x in m["ends"][name]) for name in measured[0]["ends"]}
    timed = measured[0]["steps"]
    recipe_of = {name: recipe for name, _, recipe, _, _ in VARIANTS}
    bare = {recipe: median(b[0] for name, pair in pairs.items() if recipe_of[name] == recipe for b, _ in pair)
            / timed[recipe] for recipe in timed}
    model, threads = measured[0]["model"], measured[0]["threads"]
    print(f"{model}, {threads} torch thread{'s' if threads > 1 else ''}, {timed['example']:,} steps ({EPOCHS} epochs) "
          f"per run after a first epoch of {FIRST} off the clock, {len(pairs['bare2'])} round(s) of pairs in "
          f"{processes} process(es); bare loop {bare['example'] * 1e6:.0f} µs per step; a checkpoint at each "
          f"epoch's end, and in the checkpoints rows every {timed['example'] // EPOCHS // 2} steps")
    print(f"gan recipe (examples/gan), {threads} torch thread{'s' if threads > 1 else ''}, {timed['gan']:,} steps "
          f"({EPOCHS} epochs) per run, beside a bare loop of its own: {bare['gan'] * 1e6:.0f} µs per step")
    print(f"{'variant':<58} {'+µs/step':>9} {'vs bare':>8} {'middle half':>14} {'CPU vs bare':>12} "
          f"{'own µs/step':>12} {'own vs bare':>12} {'round end ms':>13}")
    ratios, own_ratios = {}, {}
    for name, what, recipe, _, _ in VARIANTS:
        if name not in pairs:
            continue
        added = median(x[0] - b[0] for b, x in pairs[name]) / timed[recipe]
        walls = sorted(x[0] / b[0] for b, x in pairs[name])
        ratios[name] = median(walls)
        spread = f"{walls[len(walls) // 4]:.3f}-{walls[len(walls) * 3 // 4]:.3f}"
        cpu = median(x[1] / b[1] for b, x in pairs[name])
        line = f"{what:<58} {added * 1e6:>+9.1f} {ratios[name]:>7.3f}x {spread:>14} {cpu:>11.3f}x"
        if name in owns:
            own_ratios[name] = 1 + owns[name] / bare[recipe]
            line += f" {owns[name] * 1e6:>12.1f} {own_ratios[name]:>11.3f}x {ends[name] * 1e3:>13.2f}"
        print(line)
    once = {k: median(x for m in measured for x in m["once"][k]) * 1e3 for k in measured[0]["once"]}
    print("own µs/step: the template's calls and its writer thread over the steps; round end ms: each round's end "
          "(its row, statistic.json, the checkpoint's copy and write), apart: it comes once a round (an epoch, or "
          "eval_every_steps steps), whatever the round's length; side by side holds both")
    print(f"once per run, not per step (not in the figures above): session start {once['start']:.0f} ms, "
          f"first round's end (TensorBoard graph, metrics.csv's columns) {once['first']:.0f} ms, "
          f"run end {once['end']:.0f} ms")
    alone = [(what, " ".join(f"{median(x[0] / b[0] for b, x in m['pairs'][name]):.3f}x" for m in measured))
             for name, what in (("bare2", "bare again"), ("every1", "log every step"),
                                ("shipped", f"every {SHIPPED} steps"), ("gan_every1", "gan every step"))]
    print("each process alone, the median of its pairs (how far one process's figure may lead): "
          + " | ".join(f"{what} {each}" for what, each in alone))
    for how, figures in (("side by side", ratios), ("own time", own_ratios)):  # 4 places: 1.0304x is no 1.030x
        every1, shipped = figures["every1"], figures["shipped"]
        print(f"goals ({how}): log every step at most 1.03x ({verdict(every1 <= 1.03)}: {every1:.4f}x), "
              f"every {SHIPPED} steps at most 1.01x ({verdict(shipped <= 1.01)}: {shipped:.4f}x)")
    # five named values against the example's: on the same step, and the gan recipe's on its own
    for how, figures in (("side by side", ratios), ("own time", own_ratios)):
        both = [(figures[f"five_{k}"], figures[k]) for k in ("every1", "shipped")]
        print(f"five named values against the example's, on its step beside the same bare loop ({how}): log every "
              f"step {both[0][0]:.4f}x vs {both[0][1]:.4f}x, every {SHIPPED} steps {both[1][0]:.4f}x vs "
              f"{both[1][1]:.4f}x: no more ({verdict(all(f <= e for f, e in both))})")
    print(f"  own µs per step, five values against the example's: log every step {owns['five_every1'] * 1e6:.1f} vs "
          f"{owns['every1'] * 1e6:.1f} ({owns['five_every1'] / owns['every1']:.2f}x), every {SHIPPED} steps "
          f"{owns['five_shipped'] * 1e6:.1f} vs {owns['shipped'] * 1e6:.1f} "
          f"({owns['five_shipped'] / owns['shipped']:.2f}x)")
    for how, figures in (("side by side", ratios), ("own time", own_ratios)):
        both = [(figures[f"gan_{k}"], figures[k]) for k in ("every1", "shipped")]
        print(f"gan recipe's five named values against the example's, each beside its own bare loop ({how}): log "
              f"every step {both[0][0]:.4f}x vs {both[0][1]:.4f}x, every {SHIPPED} steps {both[1][0]:.4f}x vs "
              f"{both[1][1]:.4f}x: no more ({verdict(all(g <= e for g, e in both))})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[2])
    p.add_argument("--quick", action="store_true", help="200 steps (the gan 24), 1 round, 1 process (for CI)")
    p.add_argument("--example", action="store_true", help="the example's CNN on torch's threads, not the tiny MLP")
    p.add_argument("--steps", type=int, help="the example's steps per variant and round, first epoch aside "
                   "(default 2,000; --example 1,000)")
    p.add_argument("--gan-steps", type=int, help="the gan recipe's steps per run (default: an eighth of --steps, "
                   "half with --example: its step takes about 11 of the tiny MLP's, 2 of the CNN's, so that its "
                   "rounds last about as long as theirs)")
    p.add_argument("--rounds", type=int, help="rounds of pairs in all; medians are shown (default 18; --example 10)")
    p.add_argument("--processes", type=int, help="processes the rounds are shared among (default 6)")
    p.add_argument("--switches", action="store_true", help="the example's samples/s with amp and torch_compile")
    p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # one process's figures, as JSON
    a = p.parse_args(argv)
    if a.switches:
        with tempfile.TemporaryDirectory(prefix="exper-bench-") as folder:
            switches(folder, a.quick, a.rounds or (2 if a.quick else 10))
        return 0
    # an epoch's checkpoint is halfway through it: two epochs of two steps at least
    for name, least in (("steps", 2 * EPOCHS), ("gan_steps", 2 * EPOCHS), ("rounds", 1), ("processes", 1)):
        if getattr(a, name) is not None and getattr(a, name) < least:
            p.error(f"--{name.replace('_', '-')} must be at least {least}")
    steps = a.steps or (200 if a.quick else 1000 if a.example else 2000)
    gan_steps = a.gan_steps or max(2 * EPOCHS, steps // (2 if a.example else 8))
    rounds = a.rounds or (1 if a.quick else 10 if a.example else 18)
    if a.measure:
        print(json.dumps(measure(steps, gan_steps, rounds, a.example)))
        return 0
    processes = max(1, min(rounds, a.processes or (1 if a.quick else 6)))
    report(in_processes(steps, gan_steps, rounds, processes, a.example), processes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
