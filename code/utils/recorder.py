"""Everything a run records, kept off the training loop's path. Used by main.py:

    rec = Recorder(args, hparams)               # folder, log, statistic.json (running), signals
    rec.start(progress, epoch_values)           # a new session; TensorBoard file (purged on resume)
    rec.step(loss, correct, count, lr)          # per step: an append of device tensors, nothing more
    rec.epoch_end(metrics) / rec.checkpoint(snapshot, name) / rec.finish(metrics, sha)

Per-step values stay on the device and make a row every `log_every_steps`; they are read back in
one transfer for many rows at once, at most every READ_BACK_SECONDS (at each interval under
torchrun, where they are reduced across processes), and the rows go to metrics.csv and
TensorBoard from the writer thread. Only rank 0 writes files; every rank calls the same methods.
"""
import copy
import logging
import math
import os
import signal
import sys
import time
import traceback

import torch
from tqdm import tqdm

from utils import checkpoint
from utils.atomic import append_line
from utils.background import Background
from utils.distributed import AgreedStop, rank_rng_states, reduce
from utils.metrics_file import MetricsFile
from utils.runs import STATISTIC, BadRun, read_statistic
from utils.statistic import run_record

log = logging.getLogger(__name__)

# Reading the per-step values back waits for the device, so it is done for many logging
# intervals at once, at most this often: rows reach metrics.csv and TensorBoard this much later.
READ_BACK_SECONDS = 0.5


class Stop(Exception):
    """Raised at a step boundary after SIGINT/SIGTERM: main.py saves a checkpoint and exits."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class NonFinite(Exception):
    """The loss became NaN or infinite (with config.stop_on_nan)."""


SAYS_ALL = (NonFinite, checkpoint.CheckpointError)  # errors whose message says all: a traceback adds nothing


def error_text(error):
    """The short form of an error for statistic.json (the whole traceback goes to the log)."""
    if isinstance(error, SAYS_ALL):
        return str(error)
    return "".join(traceback.format_exception(error)[-3:]).strip()


def host_values(chunk, stack):
    """The steps' losses and counts of correct predictions as Python floats. stack: in one
    transfer, the one wait for the device; else each read where it is (on the CPU, where
    nothing moves, that costs less than stacking). Both give the same numbers."""
    if not stack:
        return [v[0].item() for v in chunk], [float(v[1].item()) for v in chunk]
    host = torch.cat([torch.stack([v[0] for v in chunk]).double(), torch.stack([v[1] for v in chunk]).double()])
    host = host.tolist()
    return host[:len(chunk)], host[len(chunk):]


class Tee:
    """stdout to the terminal and to the run's log, line by line."""

    def __init__(self, stream, path):
        self.stream, self.file = stream, open(path, "a", buffering=1)

    def write(self, text):
        self.stream.write(text)
        self.file.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()
        self.file.flush()

    def isatty(self):
        return self.stream.isatty()

    def fileno(self):
        return self.stream.fileno()


def setup_logging(args):
    """Rank 0 logs to stdout (which the log file tees); other ranks only say warnings."""
    if args.rank == 0 and args.run_dir:
        sys.stdout = Tee(sys.stdout, os.path.join(args.run_dir, "log"))
    logging.basicConfig(stream=sys.stdout, format="%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S",
                        level=logging.INFO if args.rank == 0 else logging.WARNING, force=True)


class Recorder:
    def __init__(self, args, hparams):
        self.args, self.hparams = args, hparams
        self.writes = args.rank == 0
        self.stop_signal = None
        self.agreed_stop = AgreedStop(args)  # under torchrun all ranks stop at the same step
        self.progress = None  # the loop's progress as the last step() saw it, to name a step
        self.epoch_values = []  # (loss, correct, count, lr) of the steps not read back yet, on the device
        self.sums = [0.0, 0.0, 0]  # loss * count, correct, count of the epoch's steps read back (all ranks)
        # read back when this many steps wait (whole logging intervals; with none, whenever time
        # says, but under torchrun only at the epoch's end, where every rank reduces at once)
        self.read_size = args.log_every_steps or (1 if args.world_size == 1 else math.inf)
        self.read_next = self.read_size  # steps waiting at which step() next looks at the time
        self.read_back_at = 0.0  # time.monotonic() from which the next read-back may happen
        self.graph = None  # (model, example) whose TensorBoard graph the first epoch end writes
        self.events = self.table = None
        self.last_snapshot = None  # the newest checkpoint's host copy: the next one copies into its tensors
        self.bg = Background() if self.writes else None
        self.record = self._load_or_new_record()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    # --- statistic.json
    def _load_or_new_record(self):
        a = self.args
        if not self.writes:
            return None
        if a.resume:
            return read_statistic(a.run_dir)
        record = run_record.new_record(a.tag, a.id, a.commit, a.subject, a.seed, a.fixed_seed, a.command, self.hparams)
        try:  # what only the launcher knows: the branch HEAD was on, or that it was detached
            first = read_statistic(a.run_dir)
            record.update({k: first[k] for k in ("branch", "detached") if k in first})
        except BadRun:  # a scratch run (python code/main.py) has no launcher
            pass
        return record

    def _write_record(self, now=False):
        if self.writes:
            snapshot = dict(self.record, metrics=dict(self.record["metrics"]))
            if now:
                self.bg.wait()
                run_record.write(self.args.run_dir, snapshot)
            else:
                self.bg.submit(run_record.write, self.args.run_dir, snapshot)

    def _on_signal(self, signum, frame):
        # the same signal may arrive twice at once (from the terminal and from the launcher);
        # a second one later than that is a user who does not want to wait
        if self.stop_signal is not None and time.monotonic() - self.stop_time > 1:
            raise KeyboardInterrupt
        if self.stop_signal is not None:
            return
        self.stop_signal, self.stop_time = signum, time.monotonic()
        log.info("%s received: stopping after this step with a checkpoint", signal.Signals(signum).name)

    # --- sessions
    def start(self, progress, saved=None, model=None, example=None):
        """A new session; `saved` is the checkpoint a resumed run continues from."""
        a = self.args
        if saved is not None and saved["epoch_values"] is not None:  # this rank's row of every rank's values
            *tensors, rest = saved["epoch_values"]
            losses, correct, counts = (v[a.rank].to(a.device) for v in tensors)
            steps = zip(losses.unbind(), correct.unbind(), counts.tolist(), rest, strict=True)
            self.epoch_values = [(loss, right, count, *more) for loss, right, count, more in steps]
        if saved is not None:
            self.sums = list(saved["epoch_sums"])
        if not self.writes:
            return
        host = run_record.host_info(torch, a.world_size, a.devices, a.rank_devices)
        run_record.start_session(self.record, host, progress["epoch"], progress["step"])
        self._write_record(now=True)
        if a.resume:
            print(f"----- continued from epoch {progress['epoch']} step {progress['step']} "
                  f"({self.record['sessions'][-1]['started']}) -----", flush=True)
        from utils.tb import EventWriter

        self.table = MetricsFile(os.path.join(a.run_dir, "metrics.csv"), progress["step"] if a.resume else None,
                                 progress["epoch"])
        # drop what the stopped session wrote after its checkpoint; rows at the checkpoint's step stay
        purge = progress["step"] + 1 if a.resume else None
        self.events = EventWriter(os.path.join(a.run_dir, "tensorboard"), purge_step=purge)
        self.bg.submit(self.events.hparams, self.hparams, [a.best_metric, "test/acc", "test/loss"])
        if model is not None and progress["epoch"] == 0:
            self.graph = (model, example)  # traced at the first epoch end, not before the first step

    def progress_bar(self, loader, epoch):
        """tqdm on stderr (never in the log), rank 0 only, off when stderr is not a terminal."""
        off = not self.args.progress_bar or not self.writes
        return tqdm(loader, desc=f"epoch {epoch + 1}/{self.args.epochs}", file=sys.stderr, leave=False,
                    disable=True if off else None, dynamic_ncols=True, mininterval=0.5)

    # --- per step
    def step(self, loss, correct, count, lr, progress):
        """Per step: an append of device tensors; their rows come later, from one read-back."""
        self.epoch_values.append((loss, correct, count, lr))
        self.progress = progress
        if len(self.epoch_values) >= self.read_next:
            if self.args.world_size > 1 or time.monotonic() >= self.read_back_at:
                self._log_steps(progress)
            else:  # look at the time again when the next interval is whole
                self.read_next += self.read_size
        if self.stop_signal is not None or self.args.world_size > 1:
            signum = self.agreed_stop.poll(self.stop_signal)
            if signum:
                raise Stop(signum)

    def _read(self, chunk):
        """Each step's loss * count, correct and count as Python numbers."""
        counts = [v[2] for v in chunk]
        losses, correct = host_values(chunk, stack=chunk[0][0].device.type != "cpu")
        return [loss * count for loss, count in zip(losses, counts, strict=True)], correct, counts

    def _check_finite(self, losses, progress):
        """Stop at a non-finite loss among the first len(losses) steps waiting (with stop_on_nan)."""
        if self.args.stop_on_nan and not math.isfinite(sum(losses)):
            bad = next(i for i, loss in enumerate(losses) if not math.isfinite(loss))
            step = progress["step"] - len(self.epoch_values) + bad + 1
            raise NonFinite(f"the loss is not finite at step {step} (epoch {progress['epoch'] + 1})")

    def _add(self, sums):
        """Add to the epoch's sums, in order: so they are the same however the steps were read back."""
        for loss, correct, count in sums:
            self.sums[0] += loss
            self.sums[1] += correct
            self.sums[2] += count

    def _log_steps(self, progress, everything=False):
        """Read back the steps waiting (the whole logging intervals among them; everything: all),
        make a row of each interval and add them to the epoch's sums; then let them go.

        Each row sums its own interval's steps in order, so rows and sums are the same whichever
        step reads them back (a resumed run's equal an uninterrupted run's). Under torchrun every
        rank reduces here, so there it runs at each interval, on every rank alike.
        """
        every, values = self.args.log_every_steps, self.epoch_values
        n = len(values) if everything or not every else len(values) // every * every
        if not n:
            return
        losses, correct, counts = self._read(values[:n])
        self._check_finite(losses, progress)
        # what is summed (and reduced) as one: an interval; with no rows, a step (one process) or
        # all the epoch's steps at its end (torchrun); the epoch's last steps of no whole interval
        unit = every or (1 if self.args.world_size == 1 else n)
        if unit == 1:
            sums = list(zip(losses, correct, counts, strict=True))
        else:
            sums = [(sum(losses[i:i + unit]), sum(correct[i:i + unit]), sum(counts[i:i + unit]))
                    for i in range(0, n, unit)]
        if self.args.world_size > 1:
            sums = reduce(torch.tensor(sums, dtype=torch.float64, device=self.args.device), self.args).tolist()
        self._add(sums)
        rows = []
        if every and n >= every:  # values[0] always starts an interval
            before = progress["step"] - len(values)  # the global step before values[0]
            rows = [{"epoch": progress["epoch"], "step": before + k * every, "train/loss_step": loss / count,
                     "train/acc_step": right / count, "lr": values[k * every - 1][3]}
                    for k, (loss, right, count) in enumerate(sums[:n // every], 1)]
        # read: only their sums are kept; freed before the writer wakes, which then takes the
        # interpreter lock from this thread for as long as it writes
        del values[:n]
        self._rows(rows)
        self.read_next = self.read_size
        self.read_back_at = time.monotonic() + READ_BACK_SECONDS

    def _rows(self, rows):
        if self.writes and rows:
            self.bg.submit(self._write_rows, rows)

    def _write_rows(self, rows):
        self.table.append(rows)
        self.events.scalar_rows(rows)
        self.events.flush()

    # --- epochs, checkpoints, the end
    def epoch_train_metrics(self, progress):
        """train/loss and train/acc of the epoch just ended (its last partial interval is read too)."""
        self._log_steps(progress, everything=True)
        (loss, correct, count), self.sums = self.sums, [0.0, 0.0, 0]
        if not count:
            return {}
        return {"train/loss": loss / count, "train/acc": correct / count}

    def epoch_end(self, metrics):
        self._rows([metrics])
        if self.writes and self.graph is not None:
            # trace a copy in eval mode with the RNG set aside: tracing must not touch the
            # model's BatchNorm statistics nor draw random numbers the training would draw
            (model, example), self.graph = self.graph, None
            with torch.random.fork_rng(devices=[]):
                self.events.graph(copy.deepcopy(model).eval(), example)
        if self.writes:
            self.record["metrics"].update(metrics)
            self._write_record()

    def checkpoint_state(self):
        """What a checkpoint holds besides the training state; every rank calls it (a collective).

        The per-step values not read back yet are each rank's own (their sums are reduced when
        read), so the checkpoint keeps every rank's: three tensors of shape (world_size, steps), and
        what else each step keeps (plain values, the same on every rank); and the epoch's sums so
        far, of all ranks.
        """
        if self.progress is not None:  # the rows up to here are written before the checkpoint is
            self._log_steps(self.progress)
        values = self.epoch_values
        stacked = None
        if values:
            stacked = [torch.stack([v[0] for v in values]), torch.stack([v[1] for v in values]),
                       torch.tensor([v[2] for v in values], device=values[0][0].device)]
            if self.args.world_size > 1:
                stacked = [self._gather(t) for t in stacked]
            else:
                stacked = [t.unsqueeze(0) for t in stacked]
            stacked.append([v[3:] for v in values])
        return {"epoch_values": stacked, "epoch_sums": list(self.sums), "config": self.hparams,
                "commit": self.args.commit, "seed": self.args.seed, "world_size": self.args.world_size,
                "rng_ranks": rank_rng_states(self.args)}

    def _gather(self, tensor):
        out = [torch.empty_like(tensor) for _ in range(self.args.world_size)]
        torch.distributed.all_gather(out, tensor)
        return torch.stack(out)

    def checkpoint(self, take, name, best=False):
        """Write take(extra, into) in the background: the loop waits only for the in-memory snapshot.

        take returns the snapshot (state.snapshot), copying into the tensors of `into`, the
        previous snapshot: so the previous write must be over first (a second save waits for the
        first). Only rank 0 takes one: the other ranks hold the same state and write nothing.
        """
        if self.progress is not None and self.epoch_values:
            # weights a non-finite loss has touched must never become the checkpoint `con` resumes
            self._check_finite(self._read(self.epoch_values)[0], self.progress)
        extra = self.checkpoint_state()
        if self.writes:
            self.bg.wait()
            self.last_snapshot = take(extra, self.last_snapshot)
            path = os.path.join(self.args.run_dir, "checkpoint")
            self.bg.submit(checkpoint.save, path, name, self.last_snapshot, best, self.args.keep_checkpoints)

    def finish(self, metrics, sha):
        self.agreed_stop.close()
        if self.writes:
            self.bg.wait()  # a checkpoint that failed to write fails the run here, before it is called finished
            self.record["metrics"].update(metrics)
            self.record["weights_sha256"] = sha
            self._end("finished")
            if not self.args.tag.startswith("_"):  # scratch runs are never listed
                finished = os.path.join(self.args.root, STATISTIC, "exper-list", "finished.txt")
                append_line(finished, f"{self.args.tag}/{self.args.id}")

    def interrupted(self, signum):
        name = signal.Signals(signum).name
        self._end("interrupted", f"stopped by {name}; `con {self.args.tag}/{self.args.id}` resumes")

    def crashed(self, error):
        if self.writes:
            if isinstance(error, SAYS_ALL):
                log.error("error: %s", error)
            else:
                log.error("".join(traceback.format_exception(error)).rstrip())
            self._end("crashed", error_text(error))

    def _end(self, status, error=None):
        if not self.writes:
            return
        try:
            self.bg.wait()
        except Exception as e:  # noqa: BLE001  (a failed write is reported, the status still lands)
            error = f"{error}; {type(e).__name__}: {e}" if error else f"{type(e).__name__}: {e}"
            status = "crashed"
        if self.events is not None:
            self.events.hparams_end(status)
            self.events.close()
        run_record.end_session(self.record, status, error)
        run_record.write(self.args.run_dir, self.record)
        self.bg.close()
