"""The template's side of a training run, as the research's main.py sees it. Usage (code/main.py):

    def main(run):
        args = run.args                                  # config.py's names, plus device, rank, seed, ...
        model, optimizer = ..., ...                      # build anything, any number of them
        run.keep(model=model, optimizer=optimizer)       # what a checkpoint holds; `con` restores it here
        trained = run.parallel(model)                    # DistributedDataParallel under torchrun
        for _ in run.rounds():                           # an epoch each (or eval_every_steps steps)
            for inputs, targets in run.batches(loader):  # from where a resumed run stopped
                ...
                run.step({"train/loss": (loss, len(targets))})   # named values, left on the device
            val = run.evaluated({"val/loss": (loss, n)})         # reduced over processes, and returned
            # the round's end is yours here: a plateau scheduler's step, sample images (run.image)
        run.tested({"test/loss": (loss, n)})

    if __name__ == "__main__":
        sys.exit(train(config, main, check=check, derived=DERIVED))

train() makes the Run (config checked, process group, log, seed, and on `con` the checkpoint
loaded and checked), calls main(run), and ends the run: `finished` when main returns,
`interrupted` with a checkpoint after Ctrl-C or SIGTERM (run.step raises Stop at the step
boundary), `crashed` on an exception. A value is a number or a 0-dim tensor, alone or as
(value, weight): see utils/train/values.py. Derived values, {"val/ppl": (math.exp, "val/loss")},
are computed from the means at every row (step rows too, as "<name>_step") and round end.
"""
import logging
import math
import os
import random
import signal
import time
from types import ModuleType, SimpleNamespace

import numpy as np
import torch

from utils.statistic.run_record import hyperparameters
from utils.train import distributed, settings, state
from utils.train.checkpoint import BEST
from utils.train.errors import Refused, ResearchError, Stop, says_all
from utils.train.logs import setup_logging
from utils.train.recorder import Recorder, progress_bar
from utils.train.values import StepValues, derive, means, pairs

log = logging.getLogger("main")

# Reading the per-step values back waits for the device, so it is done for many logging
# intervals at once, at most this often: rows reach metrics.csv and TensorBoard this much later.
READ_BACK_SECONDS = 0.5


def seed_everything(seed, deterministic):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS picks its reduction order by workspace unless told one: needed before its first use
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False


class Arguments(SimpleNamespace):
    """The run's arguments (run.args), noting the names read while that is cheap to do: building, the
    first round and the end. A name of config.py that nothing read is likely a misspelling (dropuot)."""

    def __getattribute__(self, name):
        if name[:1] != "_":
            object.__getattribute__(self, "__dict__").setdefault("_read", set()).add(name)
        return object.__getattribute__(self, name)

    def __getattr__(self, name):
        if name[:1] == "_":
            raise AttributeError(name)
        raise AttributeError(f"code/config.py has no {name!r}, which the research reads (main.py or a file it "
                             "uses): add it, or read another name", name=name, obj=self)


def _listening(args, on):
    """Note the names read from args (on) or stop, for the speed of the steps between (off)."""
    args.__class__ = Arguments if on else _Quiet


class _Quiet(Arguments):
    __getattribute__ = object.__getattribute__


def _shown(value):
    if isinstance(value, float) and value and not 1e-3 <= abs(value) < 1e6:
        return f"{value:.4g}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _set_epoch(loader, epoch):
    """Tell the loader's samplers the epoch (DistributedSampler and the like draw their order from it)."""
    for part in state.parts(loader):
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)


class Run:
    def __init__(self, config, check=None, derived=None):
        self.args = args = Arguments(**vars(settings.derive(config)))
        self.config_names = [n for n, v in vars(config).items() if not n.startswith("_") and not isinstance(
            v, ModuleType) and n not in settings.KEYS]  # the research's own names, to see which it reads
        try:
            problems = list(check(args)) if check is not None else []
        except AttributeError as e:
            if getattr(e, "obj", None) is not args:
                raise
            raise Refused(str(e)) from None
        if problems:
            raise Refused("code/config.py: " + "; ".join(problems))
        self.hparams = hyperparameters(config)
        distributed.setup(args, self.hparams)  # under torchrun: the group, and rank 0's identity and seed
        setup_logging(args)
        self.derived = dict(derived or {})
        self.identity = {"config": self.hparams, "commit": args.commit, "seed": args.seed,
                         "world_size": args.world_size}
        self.saved = self._resume_point() if args.resume else None
        seed_everything(args.seed, args.deterministic)
        self.recorder = Recorder(args, self.hparams)
        self.many = args.world_size > 1
        reduce = self._reduce_pairs if self.many else None
        self.values = StepValues(args.log_every_steps, args.stop_on_nan, reduce)
        # where training stands: data epochs done, batches of this epoch done, global step, rounds
        # done, the running round's first step, whether a round is running, the best metric's value
        self.epoch = self.batch = self.steps = self.round = self.round_start = 0
        self.in_round, self.best = False, None
        self.epoch_ends = []  # the last global step of each epoch done whose step rows may not be written yet
        self.objects = None
        self.began = False  # whether this session's training began (rounds() started)
        self._iterator = None  # the training loader's iterator for the epoch under way
        self._opened = False  # whether this session opened an iterator of the training loader yet
        self._epoch_rng = None  # the random state that epoch's iterator was made from
        self._resume_rng = None  # a resumed run's random state, set where training picks up
        self._evaluated, self._tested = {}, {}
        self._stop, self._stop_time = None, 0.0
        self._agreed = distributed.AgreedStop(args)  # under torchrun all ranks stop at the same step
        self._checkpoint_every = args.checkpoint_every_steps
        # read back when this many steps wait (whole logging intervals; with none, whenever time
        # says, but under torchrun only at the round's end, where every rank reduces at once)
        self._read_size = args.log_every_steps or (math.inf if self.many else 1)
        self._read_next = self._read_size
        self._read_back_at = 0.0
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal: the run carries on, its log complete
        distributed.ready(args)  # the launcher may now pass Ctrl-C on: it stops the run cleanly

    # --- before training
    def _resume_point(self):
        """The run's newest checkpoint that verifies and loads, checked before anything is written: a
        checkpoint of another commit, config or process count would not continue this run exactly."""
        a = self.args
        path, saved = distributed.load_checkpoint(a)  # rank 0 picks it for all ranks
        if saved is None:
            raise Refused(f"{a.tag}/{a.id} has no checkpoint that loads; `rerun {a.tag}` starts afresh")
        problem = state.mismatch(saved, self.identity)
        if problem:
            raise Refused(f"{path.name} is not {a.tag}/{a.id}'s own: {problem}; nothing was changed")
        log.info("resuming from %s", path.name)
        return saved

    def keep(self, **objects):
        """What a checkpoint holds, by name: every object with state_dict()/load_state_dict() (models,
        optimizers, schedulers, a GradScaler, ...). On `con` their states are restored here."""
        for name, obj in objects.items():
            if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
                raise ResearchError(f"run.keep({name}=...): a {type(obj).__name__} has no state_dict() and "
                                    "load_state_dict(), so a checkpoint could not hold it")
        self.objects = objects
        if self.saved is None:
            return
        saved = self.saved
        state.restore_objects(saved, objects)
        p = saved["progress"]
        self.epoch, self.batch, self.steps, self.round = p["epoch"], p["batch"], p["step"], p["round"]
        self.round_start, self.in_round, self.best = p["round_start"], p["in_round"], p["best"]
        self.epoch_ends = list(p["epoch_ends"])
        self.values.restore(distributed.mine(saved["values"], self.args))
        self._epoch_rng = distributed.mine(saved["epoch_rng"], self.args)
        self._resume_rng = distributed.mine(saved["rng"], self.args)

    def parallel(self, module):
        """The module to train: DistributedDataParallel under torchrun (every rank's gradients
        averaged), the module itself otherwise. Keep and evaluate the plain module."""
        return distributed.wrap(module, self.args)

    def graph(self, model, example):
        """Show the model in TensorBoard's Graphs tab, traced with this example input at the first
        round's end (on a copy, in eval mode, with the random generators set aside)."""
        if self.steps == 0:
            self.recorder.graph = (model, example)

    def image(self, tag, image, step=None):
        """An image in TensorBoard at this step: a tensor (C, H, W) or (H, W), floats in [0, 1] or uint8."""
        if self.recorder.writes:
            self.recorder.image(tag, self.steps if step is None else step, image.detach().to("cpu", copy=True))

    # --- the loop
    def progress(self):
        return {"epoch": self.epoch, "batch": self.batch, "step": self.steps, "round": self.round,
                "round_start": self.round_start, "in_round": self.in_round, "best": self.best,
                "epoch_ends": list(self.epoch_ends)}

    def _epoch_of(self, step):
        """The epoch column of a row at this global step: the epochs done before it."""
        return self.epoch - sum(1 for last in self.epoch_ends if last >= step)

    def _done(self):
        a = self.args
        return self.steps >= a.max_steps if a.max_steps else self.epoch >= a.epochs

    def rounds(self):
        """Each round of training: an epoch, or eval_every_steps steps; a resumed run starts where it stopped.

        The round's end comes when the loop body is done: its row (train means, the evaluation,
        the best value), then a checkpoint (epoch_<n>.pth at an epoch's end, step_<n>.pth else).
        """
        if self.objects is None:
            raise ResearchError("call run.keep(...) with the objects a checkpoint holds before run.rounds()")
        self._begin()
        while not self._done():
            if not self.in_round:
                self.round_start, self.in_round = self.steps, True
            yield self.round
            self._end_round()
            _listening(self.args, False)  # every step of the first round was heard; the rest go at full speed
        _listening(self.args, True)  # what the end reads (test_best, say)

    def _begin(self):
        """A new session: statistic.json, TensorBoard and metrics.csv; from here Ctrl-C checkpoints."""
        self.recorder.start(self.progress())
        self.began = True
        if self._resume_rng is not None and not (self.in_round and self.batch):
            state.set_rng_states(self._resume_rng)  # a round's end: training picks up right here
            self._resume_rng = None
        log.info("run %s/%s: seed %d, device %s%s", self.args.tag, self.args.id, self.args.seed, self.args.device,
                 f", {self.args.world_size} processes" if self.many else "")

    def batches(self, loader):
        """The round's training batches: the rest of the epoch, or up to the round's or run's last step.

        A resumed run opens the epoch's iterator from the random state the first session opened it
        from and skips the batches already trained, so any loader (its own generator or none,
        workers or not) yields exactly what it would have. Each batch needs one run.step().
        """
        a = self.args
        end = self.round_start + a.eval_every_steps if a.eval_every_steps else None
        last = a.max_steps or None
        stops = [s for s in (end, last) if s is not None]
        limit = min(stops) if stops else math.inf  # the step this round ends at (inf: the epoch's end)
        total = limit - self.steps if stops else (len(loader) - self.batch if hasattr(loader, "__len__") else None)
        where = f"step {self.steps}/{a.max_steps}" if a.max_steps else f"epoch {self.epoch + 1}/{a.epochs}"
        bar = progress_bar(None, where, total, a.progress_bar and self.recorder.writes)
        unshown = 0  # steps not yet on the bar: it is told ten at a time
        try:
            while self.steps < limit:
                if self._iterator is None:
                    if not a.max_steps and self.epoch >= a.epochs:
                        break
                    self._iterator = self._open(loader)
                try:
                    batch = next(self._iterator)
                except StopIteration:
                    self._iterator = None
                    self.epoch, self.batch = self.epoch + 1, 0
                    self.epoch_ends.append(self.steps)
                    if not a.eval_every_steps:  # the round is the epoch
                        break
                    continue
                before = self.steps
                yield batch
                if self.steps == before:
                    raise ResearchError("a batch of run.batches() went by without run.step(...): call it once per "
                                        "batch, with the step's values")
                unshown += 1
                if unshown >= 10:
                    bar.update(unshown)
                    unshown = 0
        finally:
            if unshown > 0:
                bar.update(unshown)
            bar.close()
        modules = [m for m in (self.objects or {}).values() if isinstance(state.unwrap(m), torch.nn.Module)]
        distributed.sync_buffers([state.unwrap(m) for m in modules], a)

    def _open(self, loader):
        """The epoch's iterator, positioned after the batches this epoch already trained."""
        skip = self.batch
        _set_epoch(loader, self.epoch)
        if skip and self._epoch_rng is not None:
            after = self._resume_rng or state.rng_states()
            state.set_epoch_states(self._epoch_rng, loader)
        else:
            self._epoch_rng = state.epoch_states(loader)
        iterator = self._iterate(loader)
        for done in range(skip):
            try:
                next(iterator)
            except StopIteration:
                raise ResearchError(f"the training loader yields {done} batches in epoch {self.epoch + 1}, but "
                                    f"this run had trained {skip} of them: it must yield the same on `con`") from None
        if skip:
            state.set_rng_states(after)
        self._resume_rng = None
        return iterator

    def _iterate(self, loader):
        """iter(loader), drawing what the first session drew. A loader with persistent worker processes
        makes its workers, and draws their base seed, at the run's first epoch only; every later epoch
        draws just its order. A resumed session past that epoch makes new workers: their base seed comes
        from a generator of its own, so the order is drawn from where the first session drew it."""
        persistent = getattr(loader, "persistent_workers", False) and getattr(loader, "num_workers", 0)
        if not (persistent and self.saved is not None and self.epoch and not self._opened):
            self._opened = True
            return iter(loader)
        self._opened = True
        log.warning("warning: this resume is exact only if the training loader's worker processes draw no random "
                    "numbers: with persistent_workers they kept their random state from epoch to epoch, and this "
                    "session starts new ones (persistent_workers=False keeps it exact)")
        own = loader.generator
        loader.generator = torch.Generator().manual_seed(self.args.seed * 1000 + self.epoch)
        try:
            return iter(loader)
        finally:
            loader.generator = own

    def step(self, values):
        """One training step's named values: appended as they are, read back many steps later."""
        waiting = self.values.waiting
        waiting.append(values)
        self.steps += 1
        self.batch += 1
        if len(waiting) >= self._read_next:
            self._read_back()
        if self._stop is not None or self.many:
            signum = self._agreed.poll(self._stop)
            if signum:
                raise Stop(signum)
        if self._checkpoint_every and self.steps % self._checkpoint_every == 0:
            self._checkpoint(f"step_{self.steps}.pth")

    def _read_back(self):
        if self.many or time.monotonic() >= self._read_back_at:
            self._rows(self.values.collect(self.steps, self._epoch_of))
        else:  # look at the time again when the next interval is whole
            self._read_next += self._read_size

    def _rows(self, rows):
        """Step rows, derived values added, to metrics.csv and TensorBoard; what to wait for next."""
        for row in rows:
            derive(row, self.derived, "_step")
        self.recorder.rows(rows)
        every = self.args.log_every_steps
        self._read_next = every - len(self.values.pending) if every else self._read_size
        unsummed = self.steps - len(self.values.pending) - len(self.values.waiting)
        self.epoch_ends = [last for last in self.epoch_ends if last >= unsummed]  # the older ones name no row
        self._read_back_at = time.monotonic() + READ_BACK_SECONDS

    def _reduce_pairs(self, sums):
        """[[sum, weight], ...] summed over the processes (the same layout on every rank)."""
        if not sums:
            return sums
        tensor = torch.tensor(sums, dtype=torch.float64, device=self.args.device)
        return distributed.reduce(tensor, self.args).tolist()

    def _means(self, values):
        """Named values (see utils/train/values.py) as means over every process, derived values added."""
        read = pairs(values)
        names = sorted(read)  # every rank reports the same names, so the order agrees too
        sums = {name: list(read[name]) for name in names}
        if self.many:
            sums = dict(zip(names, self._reduce_pairs([sums[n] for n in names]), strict=True))
        return means(sums)

    def evaluated(self, values):
        """An evaluation's named values, e.g. {"val/loss": (loss, n)}: reduced over the processes, put in
        the round's row, and returned (with the derived values) for the round's end."""
        found = self._means(values)
        self._evaluated.update(found)
        return derive(dict(found), self.derived)

    def tested(self, values):
        """The test split's named values: reduced, recorded in statistic.json and TensorBoard; returned."""
        found = derive(self._means(values), self.derived)
        self._tested.update(found)
        log.info("test  %s", "  ".join(f"{k} {_shown(v)}" for k, v in found.items()))
        return found

    def _end_round(self):
        a = self.args
        self._rows(self.values.collect(self.steps, self._epoch_of, whole_round=True))
        row = {"epoch": self.epoch, "step": self.steps, **self.values.round_means(), **self._evaluated}
        derive(row, self.derived)
        self.values.new_round()
        self._evaluated = {}
        self._check_names(row)
        is_best = False
        if a.best_metric is not None:
            value = row[a.best_metric]
            is_best = self.best is None or (value > self.best if a.best_mode == "max" else value < self.best)
            if is_best:
                self.best = value
            row[f"{a.best_metric}_best"] = self.best
        where = f"step {self.steps}/{a.max_steps}" if a.max_steps else f"epoch {self.epoch}/{a.epochs}"
        log.info("%s  %s", where, "  ".join(f"{k} {_shown(v)}" for k, v in row.items() if k not in ("epoch", "step")))
        self.recorder.round_end(row)
        self.round, self.in_round = self.round + 1, False
        self._checkpoint(f"epoch_{self.epoch}.pth" if self._iterator is None else f"step_{self.steps}.pth", is_best)

    def _check_names(self, row):
        """The names config.py and the derived values refer to must be among those the run reports."""
        a, known = self.args, set(row) | set(self.values.names)
        there = ", ".join(sorted(set(row) - {"epoch", "step"}))
        if a.best_metric is not None and a.best_metric not in row:
            raise ResearchError(f"best_metric {a.best_metric!r} (code/config.py) is none of the metrics this run "
                                f"reports: {there}; name one of them, or None for no epoch_best.pth")
        if a.stop_on_nan is not None and a.stop_on_nan not in self.values.names:
            raise ResearchError(f"stop_on_nan {a.stop_on_nan!r} (code/config.py) is none of the step values: "
                                f"{', '.join(self.values.names)}; name one of them, or None")
        for name, (_, *inputs) in self.derived.items():
            missing = [i for i in inputs if i not in known]
            if missing and not all(i.startswith("test/") for i in missing):
                raise ResearchError(f"the derived value {name!r} needs {', '.join(missing)}, which this run does not "
                                    f"report (it reports {there})")

    def _checkpoint(self, name, best=False):
        """Every rank's state (a collective), written by rank 0 in the background."""
        self._rows(self.values.collect(self.steps, self._epoch_of))  # rows up to here land before the checkpoint
        everyone = distributed.gather((self.values.state(), state.rng_states(), self._epoch_rng), self.args)
        if not self.recorder.writes:
            return
        values, rng, epoch_rng = (list(part) for part in zip(*everyone, strict=True))
        progress = self.progress()

        def take(into):
            return state.snapshot(self.objects, progress, values, rng, epoch_rng, self.identity, into)

        self.recorder.checkpoint(take, name, best)

    def load_best(self):
        """Load the models' weights of epoch_best.pth (best by best_metric), say to test them instead of the last."""
        a = self.args
        if a.best_metric is None:
            raise ResearchError("run.load_best() needs a best_metric in code/config.py (it is None)")
        self.recorder.wait()
        path, saved = distributed.load_checkpoint(a, BEST)
        if saved is None:
            raise ResearchError(f"there is no {BEST} to load yet: it is written at the first round's end")
        models = [n for n, o in self.objects.items() if isinstance(state.unwrap(o), torch.nn.Module)]
        state.restore_objects(saved, self.objects, only=models)
        log.info("loaded the weights of %s (%s %s at step %d)", path.name, a.best_metric,
                 _shown(saved["progress"]["best"]), saved["progress"]["step"])

    # --- the end
    def _on_signal(self, signum, frame):
        if not self.began:  # nothing ran yet: stop now, and the launcher keeps nothing
            raise Stop(signum)
        # the same signal may arrive twice at once (from the terminal and from the launcher);
        # a second one later than that is a user who does not want to wait
        if self._stop is not None and time.monotonic() - self._stop_time > 1:
            raise KeyboardInterrupt
        if self._stop is not None:
            return
        self._stop, self._stop_time = signum, time.monotonic()
        log.info("%s received: stopping after this step with a checkpoint", signal.Signals(signum).name)

    def finish(self):
        self._agreed.close()
        sha = state.weights_sha256(self.objects or {})
        self.recorder.finish(dict(self._tested), sha, self.steps)
        log.info("finished: weights_sha256 %s", sha)
        unread = [n for n in self.config_names if n not in vars(self.args).get("_read", ())]
        if unread and self.recorder.writes:
            log.warning("warning: code/config.py has names this run never read: %s (misspelled? left over?)",
                        ", ".join(unread))

    def interrupted(self, signum):
        if self.began:
            name = f"step_{self.steps}.pth"
            self._checkpoint(name)
            self.recorder.wait()
            log.info("stopped at step %d with checkpoint %s; `con %s/%s` resumes", self.steps, name,
                     self.args.tag, self.args.id)
        self.recorder.interrupted(signum)


def train(config, main, check=None, derived=None):
    """Run main(run) as a recorded training run; the process's exit code. See the module docstring."""
    return distributed.report(lambda: _train(config, main, check, derived))


def _train(config, main, check, derived):
    try:
        run = Run(config, check, derived)
    except OSError as e:  # the machine refuses a file of the run (a planted link, no permission, no space)
        if e.filename is None:
            raise
        raise Refused(f"{e.filename}: {e.strerror or e}") from None
    try:
        main(run)
        run.finish()
    except Stop as stop:
        run.interrupted(stop.signum)
        return 128 + stop.signum
    except Refused:  # a checkpoint that does not fit the research's objects: nothing was changed
        raise
    except AttributeError as error:  # a name config.py lacks
        if getattr(error, "obj", None) is not run.args:
            run.recorder.crashed(error)
            raise
        if not run.began:
            raise Refused(str(error)) from None
        run.recorder.crashed(ResearchError(str(error)))
        return 1
    except BaseException as error:
        run.recorder.crashed(error)
        if isinstance(error, KeyboardInterrupt):
            return 128 + signal.SIGINT
        if says_all(error):  # its sentence is in the log and statistic.json; a traceback would add only noise
            return 1
        raise
    return 0

