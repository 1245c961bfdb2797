"""The files a run writes, kept off the training loop's path. Used by utils/train/run.py:

    rec = Recorder(args, hparams)            # statistic.json (new, or the resumed run's), the writer thread
    rec.start(progress)                      # a new session; TensorBoard file (purged on resume), metrics.csv
    rec.rows(rows) / rec.round_end(row)      # metrics.csv rows and TensorBoard scalars, in the background
    rec.image(tag, step, image)              # a PNG in TensorBoard
    rec.checkpoint(take, name, best)         # take() the snapshot, write it in the background
    rec.finish(metrics, sha) / rec.interrupted(signum) / rec.crashed(error)

Only rank 0 writes files; on other ranks every method does nothing. Writes go to one
background thread in the order asked, so rows written before a checkpoint are on disk before
that checkpoint is.
"""
import copy
import logging
import os
import signal
import sys
import threading
import traceback

import torch
from tqdm import tqdm

from utils.runs import BadRun, read_statistic
from utils.statistic import run_record
from utils.statistic.lists import FINISHED, add_runs
from utils.train import checkpoint
from utils.train.background import Background
from utils.train.errors import error_text, says_all
from utils.train.metrics_file import MetricsFile

log = logging.getLogger(__name__)


class _Terminal:
    """stderr for the progress bar: a terminal that went away (closed, hung up) silences the bar, never the run."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        if self.stream is not None:
            try:
                self.stream.write(text)
            except (OSError, ValueError):
                self.stream = None

    def flush(self):
        if self.stream is not None:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self.stream = None

    def isatty(self):
        return self.stream is not None and self.stream.isatty()

    def fileno(self):  # tqdm asks the terminal's width
        return self.stream.fileno() if self.stream is not None else -1


def progress_bar(iterable, description, total, enabled):
    """tqdm on stderr (never in the log), off when stderr is not a terminal."""
    return tqdm(iterable, desc=description, total=total, file=_Terminal(sys.stderr), leave=False,
                disable=True if not enabled or not sys.stderr.isatty() else None, dynamic_ncols=True,
                mininterval=0.5)


class Recorder:
    def __init__(self, args, hparams):
        self.args, self.hparams = args, hparams
        self.writes = args.rank == 0
        self.events = self.table = None
        self.began = False  # whether this process began a session (a run that fails while building begins none)
        self.graph = None  # (model, example input) whose TensorBoard graph the first round's end writes
        self.last_snapshot = None  # the newest checkpoint's host copy: the next one copies into its tensors
        self.saved = None  # set once that snapshot is written (its buffers may then be reused)
        self.bg = Background() if self.writes else None
        self.record = self._load_or_new_record() if self.writes else None

    # --- statistic.json
    def _load_or_new_record(self):
        a = self.args
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
        snapshot = dict(self.record, metrics=dict(self.record["metrics"]))
        if now:
            self.bg.wait()
            run_record.write(self.args.run_dir, snapshot)
        else:
            self.bg.submit(run_record.write, self.args.run_dir, snapshot)

    # --- sessions
    def start(self, progress):
        """A new session: from here on the run is `running` under this process."""
        if not self.writes:
            return
        a = self.args
        host = run_record.host_info(torch, a.world_size, a.devices, a.rank_devices)
        last = self.record["sessions"][-1] if self.record["sessions"] else None
        if last is not None and last.get("ended") is None:  # killed without a word (kill -9, a lost machine)
            last["ended"] = run_record.time_of(os.path.join(a.run_dir, "statistic.json"))  # its last sign of life
            last["killed"] = True
        run_record.start_session(self.record, host, progress["epoch"], progress["step"])
        self.began = True
        self._write_record(now=True)
        if a.resume:
            print(f"----- continued from epoch {progress['epoch']} step {progress['step']} "
                  f"({self.record['sessions'][-1]['started']}) -----", flush=True)
        from utils.train.tb import EventWriter

        self.table = MetricsFile(os.path.join(a.run_dir, "metrics.csv"), progress["step"] if a.resume else None,
                                 progress["epoch"])
        # drop what the stopped session wrote after its checkpoint; rows at the checkpoint's step stay
        purge = progress["step"] + 1 if a.resume else None
        self.events = EventWriter(os.path.join(a.run_dir, "tensorboard"), purge_step=purge)
        self.bg.submit(self.events.hparams, self.hparams)

    # --- rows, images
    def rows(self, rows):
        if self.writes and rows:
            self.bg.submit(self._write_rows, rows)

    def _write_rows(self, rows):
        self.table.append(rows)
        self.events.scalar_rows(rows)
        self.events.flush()

    def round_end(self, row):
        """A round's row (the epoch's or the evaluation's); the first one also writes the graph."""
        if not self.writes:
            return
        self.rows([row])
        if self.graph is not None:
            # trace a copy in eval mode with the RNG set aside: tracing must not touch the
            # model's BatchNorm statistics nor draw random numbers the training would draw
            (model, example), self.graph = self.graph, None
            with torch.random.fork_rng(devices=[]):
                self.events.graph(copy.deepcopy(model).eval(), example)
        self.record["metrics"].update(row)
        self._write_record()

    def image(self, tag, step, image):
        if self.writes:
            self.bg.submit(self._write_image, tag, step, image)

    def _write_image(self, tag, step, image):
        self.events.image(tag, step, image)
        self.events.flush()

    # --- checkpoints, the end
    def checkpoint(self, take, name, best=False):
        """Write take(into) in the background: the loop waits only for the in-memory snapshot.

        take returns the snapshot (state.snapshot), copying into the tensors of `into`, the
        previous snapshot: so the previous write must be over first (a second save waits for
        the first).
        """
        if self.writes:
            if self.saved is not None:  # only the previous save: rows and records queued meanwhile go on
                self.bg.wait_for(self.saved)
            self.last_snapshot = take(self.last_snapshot)
            self.saved = threading.Event()
            path = os.path.join(self.args.run_dir, "checkpoint")
            self.bg.submit(self._save, path, name, self.last_snapshot, best, self.saved)

    def _save(self, path, name, snapshot, best, done):
        try:
            checkpoint.save(path, name, snapshot, best, self.args.keep_checkpoints)
        finally:
            done.set()

    def wait(self):
        if self.writes:
            self.bg.wait()

    def finish(self, metrics, sha, last_step):
        if not self.writes:
            return
        shown = {k: v for k, v in metrics.items() if k not in ("epoch", "step")}
        if shown:
            self.rows_tb_only(last_step, shown)
        self.bg.wait()  # a checkpoint that failed to write fails the run here, before it is called finished
        self.record["metrics"].update(metrics)
        self.record["weights_sha256"] = sha
        self._end("finished")
        if not self.args.tag.startswith("_"):  # scratch runs are never listed
            try:
                add_runs(self.args.root, FINISHED, [(self.args.tag, self.args.id)])
            except OSError as e:  # the run is finished all the same; the next reader of the list adds it
                log.warning("warning: could not add %s/%s to finished.txt: %s: %s", self.args.tag, self.args.id,
                            e.filename, e.strerror or e)

    def rows_tb_only(self, step, values):
        """Scalars at a step that metrics.csv has no row for (the test split's, at the run's end)."""
        self.bg.submit(self._write_scalars, step, values)

    def _write_scalars(self, step, values):
        self.events.scalars(step, values)
        self.events.flush()

    def interrupted(self, signum):
        name = signal.Signals(signum).name
        self._end("interrupted", f"stopped by {name}; `con {self.args.tag}/{self.args.id}` resumes")

    def crashed(self, error):
        if self.writes:
            if says_all(error):
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
            error = f"{error}; {error_text(e)}" if error else error_text(e)
            status = "crashed"
        if self.events is not None:
            self.events.hparams_end(status)
            self.events.close()
        if self.began:  # a run that failed while building began no session: the launcher says what happened
            run_record.end_session(self.record, status, error)
            run_record.write(self.args.run_dir, self.record)
        self.bg.close()
