"""What ends a run early, and how each is told. Usage: raise Stop(signal.SIGINT); error_text(error)

Stop is the one planned way out of the training loop (Ctrl-C, SIGTERM): a checkpoint, then
`interrupted`. Refused and the errors in SAYS_ALL are sentences for a person: their text is the
whole story, so no traceback goes with them.
"""
import signal
import traceback


class Stop(Exception):
    """Raised at a step boundary after SIGINT/SIGTERM/SIGHUP: the run saves a checkpoint and exits."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Refused(Exception):
    """The run cannot start as asked (a config value, a checkpoint that is not its own): one error line."""


class NonFinite(Exception):
    """The value config.stop_on_nan names became NaN or infinite."""


class ResearchError(Exception):
    """The research's files broke the template's contract (a best_metric no evaluation reports, say)."""


def says_all(error):
    from utils.train.checkpoint import CheckpointError

    return isinstance(error, (Refused, NonFinite, ResearchError, CheckpointError))


def error_text(error):
    """The short form of an error for statistic.json (the whole traceback goes to the log)."""
    if says_all(error):
        return str(error)
    return "".join(traceback.format_exception(error)[-3:]).strip()
