"""Named values, each a weighted mean: what a training step or an evaluation reports.

Usage: values = StepValues(log_every_steps, nan_name, reduce)
       values.waiting.append({"train/loss": (loss, len(targets)), "train/lr": lr})   # per step, nothing more
       rows = values.collect(last_step, epoch_of)   # read back; a row per whole logging interval
       means = values.round_means(); values.new_round()

A value is a number or a 0-dim tensor (left on its device), alone (weight 1) or as
(value, weight): the mean over `weight` items (a batch's size, its token count; a tensor too).
Over a logging interval, a round or the processes of a run, a name's value is
sum(value * weight) / sum(weight). Reading a step's tensors back waits for the device, so it is
done for many steps at once; the sums are made per logging interval, in step order, whenever
they are read, so rows and round means are the same numbers however the reads fell (a resumed
run's equal an uninterrupted one's). Under torchrun each interval's sums are reduced across
processes as the interval completes, on every rank at the same step.
"""
import math

import torch

from utils.train.errors import NonFinite


def pairs(values):
    """{name: (value * weight, weight)} as Python floats: a step's or an evaluation's values, read back."""
    return host([values])[0]


def _split(value):
    return value if type(value) is tuple else (value, 1)


def host(steps, stack=None):
    """Each step's {name: (value * weight, weight)} as Python floats.

    On the CPU each tensor is read where it is (nothing moves, and reading costs less than
    stacking); on a device (stack=None: by the first tensor's device) every tensor of every step
    comes back in one transfer per dtype. Both give the same numbers.
    """
    if stack is None:  # where the first step's first tensor lives (one run trains on one device)
        first = next((t for v in (steps[0].values() if steps else ()) for t in _split(v)
                      if isinstance(t, torch.Tensor)), None)
        stack = first is not None and first.device.type != "cpu"
    tensors = [t for step in steps for v in step.values() for t in _split(v) if isinstance(t, torch.Tensor)] \
        if stack else []
    if not tensors:
        return _read_in_place(steps)
    by_dtype = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    read = {}
    for group in by_dtype.values():
        for t, x in zip(group, torch.stack([t.reshape(()) for t in group]).double().tolist(), strict=True):
            read[id(t)] = x
    number = lambda x: read[id(x)] if isinstance(x, torch.Tensor) else float(x)  # noqa: E731
    out = []
    for step in steps:
        row = {}
        for name, v in step.items():
            if type(v) is tuple:
                v, w = v
                w = number(w)
            else:
                w = 1.0
            row[name] = (number(v) * w, w) if w else (0.0, 0.0)  # no items: 0/0 is no value
        out.append(row)
    return out


def _read_in_place(steps):
    """host() on the CPU: each value read where it is. The read-back's hot loop, so its common
    cases (a tensor, an int or float weight) are tested by exact type before anything general."""
    tensor, number = torch.Tensor, (int, float)
    out = []
    for step in steps:
        row = {}
        for name, v in step.items():
            if v.__class__ is tuple:
                v, w = v
                w = float(w) if w.__class__ in number else float(w.item() if isinstance(w, tensor) else w)
            else:
                w = 1.0
            v = v.item() if v.__class__ is tensor or isinstance(v, tensor) else v
            row[name] = (float(v) * w, w) if w else (0.0, 0.0)  # no items: 0/0 is no value
        out.append(row)
    return out


def add(sums, row):
    """Add a step's (or interval's) {name: (sum, weight)} into sums, in place."""
    for name, (s, w) in row.items():
        total = sums.get(name)
        if total is None:
            sums[name] = [s, w]
        else:
            total[0] += s
            total[1] += w


def means(sums):
    """{name: sum / weight} of the names with any weight."""
    return {name: s / w for name, (s, w) in sums.items() if w}


def derive(row, derived, suffix=""):
    """Add the derived values whose inputs the row has: derived = {name: (function, input, ...)}."""
    for name, (function, *inputs) in derived.items():
        if all(f"{i}{suffix}" in row for i in inputs):
            try:
                row[f"{name}{suffix}"] = function(*(row[f"{i}{suffix}"] for i in inputs))
            except (ArithmeticError, ValueError):  # exp of a huge loss: the value is infinite, not an error
                row[f"{name}{suffix}"] = math.inf
    return row


class StepValues:
    def __init__(self, every, nan_name=None, reduce=None):
        self.every = every  # steps per logging interval (0: one interval per round)
        self.nan_name = nan_name  # a non-finite value of this name stops the run
        self.reduce = reduce  # sums a list of [sum, weight] across processes (None: one process)
        self.waiting = []  # the steps' values as handed over, not read back yet
        self.pending = []  # read back, of the round's interval that is not whole yet
        self.sums = {}  # name -> [sum, weight] of the round's intervals summed so far
        self.names = {}  # every name seen, in first-seen order (a dict as an ordered set)

    def state(self):
        """This rank's part of a checkpoint (after collect(): nothing is waiting)."""
        return {"pending": self.pending, "sums": self.sums, "names": list(self.names)}

    def restore(self, state):
        self.pending = [{k: tuple(v) for k, v in step.items()} for step in state["pending"]]
        self.sums = {k: list(v) for k, v in state["sums"].items()}
        self.names = dict.fromkeys(state["names"])

    def read(self, last_step):
        """Read back the waiting steps (the last of them is global step last_step), checking stop_on_nan."""
        if not self.waiting:
            return
        read = host(self.waiting)
        if self.nan_name is not None:
            for i, step in enumerate(read):
                value = step.get(self.nan_name)
                if value is not None and not math.isfinite(value[0]):
                    step_number = last_step - len(read) + i + 1
                    raise NonFinite(f"{self.nan_name} is not finite at step {step_number} (stop_on_nan)")
        self.waiting.clear()
        for step in read:
            if not step.keys() <= self.names.keys():
                self.names.update(dict.fromkeys(step))
        self.pending += read

    def collect(self, last_step, epoch_of, whole_round=False):
        """Read back, then sum each whole logging interval waiting (whole_round: the last partial one
        too) into the round's sums, and return a metrics.csv row for each whole interval; epoch_of(step)
        gives a row's epoch column (the epochs done before that step)."""
        self.read(last_step)
        every, pending = self.every, self.pending
        n = len(pending) if whole_round or not every else len(pending) // every * every
        if not every and not whole_round:
            n = 0
        if not n:
            return []
        size = every or n
        if size == 1:  # a row every step: each step's values are its interval's sums
            chunks = pending[:n]
        else:
            chunks = []
            for i in range(0, n, size):
                chunk = {}
                for step in pending[i:i + size]:
                    add(chunk, step)
                chunks.append(chunk)
        if self.reduce is not None:
            names = list(self.names)  # the same on every rank: every rank reports the same names
            flat = self.reduce([chunk.get(name, [0.0, 0.0]) for chunk in chunks for name in names])
            chunks = [{name: flat[k * len(names) + j] for j, name in enumerate(names) if flat[k * len(names) + j][1]}
                      for k in range(len(chunks))]
        for chunk in chunks:
            add(self.sums, chunk)
        first = last_step - len(pending)  # the global step before pending[0], which starts an interval
        rows = []
        if every:
            for k, chunk in enumerate(chunks[: n // every], 1):
                row = {f"{name}_step": value for name, value in means(chunk).items()}
                rows.append({"epoch": epoch_of(first + k * every), "step": first + k * every, **row})
        del pending[:n]
        return rows

    def round_means(self):
        return means(self.sums)

    def new_round(self):
        self.sums = {}

