"""metrics.csv: one row per epoch (and per logged step), columns epoch, step, then the metrics.

Usage: table = MetricsFile(path, resume_step=None); table.append([{"epoch": 0, "step": 10, "train/loss_step": 0.5}])

Rows are appended in one write() each batch, so a kill leaves at most a torn last line; a
resumed run keeps only whole rows written before its checkpoint (rewritten atomically), so no
step appears twice. "Before" is step <= the checkpoint's step and epoch <= its epoch: a
checkpoint taken at an epoch's last step but before its end (Ctrl-C, checkpoint_every_steps)
shares its step with that epoch's row, which the resumed run writes again. A metric first
seen later widens the header (the file is rewritten once).
"""
import csv
import io
import os

from utils.atomic import write_text

FIRST = ["epoch", "step"]


class MetricsFile:
    def __init__(self, path, resume_step=None, resume_epoch=None):
        self.path = path
        self.columns = list(FIRST)
        if resume_step is not None and os.path.exists(path):
            self._truncate(resume_step, resume_epoch)
        elif os.path.exists(path):
            os.unlink(path)

    def _read(self):
        with open(self.path, newline="") as f:
            text = f.read()
        if not text.endswith("\n"):  # a torn last line from a kill
            text = text[: text.rfind("\n") + 1]
        rows = list(csv.DictReader(io.StringIO(text)))
        with open(self.path, newline="") as f:
            header = next(csv.reader(f), FIRST)
        return header, rows

    def _truncate(self, resume_step, resume_epoch=None):
        header, rows = self._read()
        self.columns = header
        kept = [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= resume_step
                and (resume_epoch is None or r.get("epoch", "").isdigit() and int(r["epoch"]) <= resume_epoch)]
        self._rewrite(kept)

    def _rewrite(self, rows):
        out = io.StringIO()
        writer = csv.DictWriter(out, self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.path, out.getvalue())

    def append(self, rows):
        new = [k for row in rows for k in row if k not in self.columns]
        if new or not os.path.exists(self.path):
            old = self._read()[1] if os.path.exists(self.path) else []
            self.columns += list(dict.fromkeys(new))
            self._rewrite(old)
        out = io.StringIO()
        # csv writes None as an empty cell and a float as its repr, the shortest text that reads back the same
        csv.writer(out, lineterminator="\n").writerows([row.get(c) for c in self.columns] for row in rows)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, out.getvalue().encode())
        finally:
            os.close(fd)
