"""The run's log: what the training process prints, on the terminal and in __result__/<tag>/<id>/log.

Usage: setup_logging(args)   # once, in the training process, before anything is printed

The log file is the record: it gets every line whatever happens to the terminal. A terminal
that goes away (a closed window, `run x | head -1`, a full /dev/full) costs the terminal its
copy, never the run or its log: the first write the terminal refuses detaches it and the run
carries on writing the file.
"""
import logging
import os
import sys

from utils.atomic import open_append


class Tee:
    """stdout to the terminal and to the run's log, line by line."""

    def __init__(self, stream, path):
        self.stream, self.file = stream, open_append(path)

    def write(self, text):
        self.file.write(text)
        if self.stream is not None:
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # EPIPE, EIO from a hung-up terminal, ENOSPC, a closed stream
                self.detach()
        return len(text)

    def detach(self):
        """Stop writing to the terminal (it is gone), and keep fd 1 from raising in anyone else."""
        self.stream = None
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.close(devnull)
        except OSError:
            pass

    def flush(self):
        self.file.flush()

    def isatty(self):
        return self.stream is not None and self.stream.isatty()

    def fileno(self):
        return self.file.fileno()


class _Quiet(logging.StreamHandler):
    """A log handler that never prints "--- Logging error ---" for a stream that went away."""

    def handleError(self, record):  # noqa: N802  (logging's name)
        pass


def setup_logging(args):
    """Rank 0 logs to stdout (which the log file tees); other ranks only say warnings."""
    if args.rank == 0 and args.run_dir:
        sys.stdout = Tee(sys.stdout, os.path.join(args.run_dir, "log"))
    handler = _Quiet(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logging.basicConfig(handlers=[handler], level=logging.INFO if args.rank == 0 else logging.WARNING, force=True)
