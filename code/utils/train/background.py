"""One writer thread per run, so disk writes stay off the training loop's path.

Usage: bg = Background(); bg.submit(write_rows, rows); ...; bg.wait()  # drain, re-raise errors

Jobs run one at a time in the order submitted: metrics rows written before a checkpoint are
on disk before that checkpoint is, so a resume never finds a checkpoint newer than its rows.
An error in a job is kept and raised in the training thread at the next submit() or wait().
"""
import queue
import threading


class Background:
    def __init__(self):
        self._jobs = queue.Queue()
        self._error = None
        self._thread = threading.Thread(target=self._work, name="exper-writer", daemon=True)
        self._thread.start()

    def _work(self):
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None:  # after a failure, drop the rest: the run is ending
                    job[0](*job[1])
            except BaseException as e:  # noqa: BLE001  (handed to the training thread)
                self._error = e
            finally:
                self._jobs.task_done()

    def _raise(self):
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, function, *args):
        self._raise()
        self._jobs.put((function, args))

    def wait(self):
        self._jobs.join()
        self._raise()

    def wait_for(self, done):
        """Wait until the threading.Event `done` is set by a job, or a job failed (then raise its error)."""
        while not done.wait(0.05):
            if self._error is not None:
                break
        self._raise()

    def close(self):
        self._jobs.put(None)
        self._thread.join()
