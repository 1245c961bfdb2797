"""The cost benchmarks run to the end in their quick mode and print their figures (CI keeps them
working; the goals are judged from full runs, never here), and the runs overhead.py measures
record what a run records: the same rows however the values were read back. overhead.py measures the
example (its step, optimizer and model), so its tests go with the example; latency.py runs whatever
research code/ holds.
"""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import EXAMPLE_HERE, NOT_EXAMPLE

BENCH = Path(__file__).resolve().parents[1] / "bench"

ROWS = ["bare loop again (what noise looks like)",
        "peer floor: .item() into a Python list, JSON at the end",
        "peer: SummaryWriter.add_scalar, 4 scalars every step",
        "template, log every step", "template, log every 10 steps (shipped)",
        "template, log every step, checkpoints", "template, log every 10 steps, checkpoints",
        "template, log every step, as five values", "template, log every 10 steps, as five values",
        "gan: template, log every step", "gan: template, log every 10 steps (shipped)"]


def bench(*argv, timeout=600):
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, check=False, timeout=timeout,
                          cwd=BENCH)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


with_the_example = pytest.mark.skipif(not EXAMPLE_HERE, reason=NOT_EXAMPLE)


def ratio(text):
    assert text.endswith("x"), text
    return float(text[:-1])


def comparison(line, start):
    """The two pairs of ratios of a comparison line, and its verdict."""
    assert line.startswith(start), line
    figures = line.partition("): ")[2]
    assert figures.startswith("log every step ") and " every 10 steps " in figures, line
    every, _, shipped = figures.partition(", every 10 steps ")
    every = every.removeprefix("log every step ").split(" vs ")
    shipped, _, verdict = shipped.partition(": no more (")
    assert verdict in ("met)", "missed)"), line
    return [ratio(x) for x in every + shipped.split(" vs ")], verdict == "met)"


@with_the_example
def test_overhead_quick():
    lines = bench("overhead.py", "--quick")
    assert lines[0].startswith("tiny MLP, 1 torch thread, 200 steps (2 epochs) per run after a first epoch of 10 "
                               "off the clock, 1 round(s) of pairs in 1 process(es); bare loop "), lines[0]
    assert lines[1].startswith("gan recipe (examples/gan), 1 torch thread, 24 steps (2 epochs) per run, beside a "
                               "bare loop of its own: "), lines[1]
    assert lines[2].split() == ["variant", "+µs/step", "vs", "bare", "middle", "half", "CPU", "vs", "bare", "own",
                                "µs/step", "own", "vs", "bare", "round", "end", "ms"]
    rows = lines[3:14]
    assert [r.split("  ")[0] for r in rows] == ROWS
    for row in rows[:3]:
        added, wall, spread, cpu = row.split()[-4:]
        low, high = map(float, spread.split("-"))
        assert float(added) == float(added) and ratio(wall) > 0 and 0 < low <= high and ratio(cpu) > 0
    for row in rows[3:]:  # the template's variants also account for their own time, and their round ends apart
        added, wall, spread, cpu, own, own_ratio, ends = row.split()[-7:]
        assert ratio(wall) > 0 and ratio(cpu) > 0 and float(own) > 0 and ratio(own_ratio) > 1 and float(ends) > 0
    assert lines[14].startswith("own µs/step: the template's calls and its writer thread over the steps; round end")
    lines = lines[:14] + lines[15:]
    assert lines[14].startswith("once per run, not per step") and lines[14].endswith(" ms")
    assert lines[15].startswith("each process alone, the median of its pairs")
    assert lines[16].startswith("goals (side by side): log every step at most 1.03x (")
    assert lines[17].startswith("goals (own time): log every step at most 1.03x (")
    # five named values against the example's, as a ratio of the same run: the figures of the rows above
    table = {r.split("  ")[0]: r.split() for r in rows}
    for line, how, column in ((lines[18], "side by side", -6), (lines[19], "own time", -2)):
        figures, met = comparison(line, "five named values against the example's, on its step beside the same bare "
                                        f"loop ({how}): ")
        names = ["template, log every step, as five values", "template, log every step",
                 "template, log every 10 steps, as five values", "template, log every 10 steps (shipped)"]
        assert all(abs(f - ratio(table[n][column])) < 6e-4 for f, n in zip(figures, names, strict=True)), line
        assert met == (figures[0] <= figures[1] and figures[2] <= figures[3])
    assert lines[20].startswith("  own µs per step, five values against the example's: log every step "), lines[20]
    for line, how in ((lines[21], "side by side"), (lines[22], "own time")):
        figures, met = comparison(line, "gan recipe's five named values against the example's, each beside its own "
                                        f"bare loop ({how}): ")
        assert all(f > 0 for f in figures) and met == (figures[0] <= figures[1] and figures[2] <= figures[3])
    assert len(lines) == 23


@with_the_example
def test_overhead_pools_rounds_from_several_processes():
    # on the example's model: each measuring process must be told so, not only the first
    lines = bench("overhead.py", "--steps", "20", "--gan-steps", "4", "--rounds", "2", "--processes", "2",
                  "--example")
    assert lines[0].startswith("the example's CNN, "), lines[0]
    assert "per run after a first epoch of 10 off the clock, 2 round(s) of pairs in 2 process(es);" in lines[0]
    assert " 4 steps (2 epochs) per run" in lines[1], lines[1]
    alone = lines[16].partition("): ")[2].split(" | ")
    assert [a.rsplit(" ", 2)[0] for a in alone] == ["bare again", "log every step", "every 10 steps",
                                                    "gan every step"], alone
    for figures in alone:  # one median per process
        assert all(ratio(x) > 0 for x in figures.split()[-2:]), figures
    assert lines[22].startswith("gan recipe's five named values against the example's"), lines[22]


@with_the_example
def test_overhead_refuses_sizes_it_cannot_measure():
    for option in ("--steps=3", "--gan-steps=3", "--rounds=0", "--processes=0"):
        done = subprocess.run([sys.executable, "overhead.py", option], capture_output=True, text=True, cwd=BENCH,
                              check=False, timeout=120)
        assert done.returncode == 2 and done.stderr.splitlines()[-1].startswith("overhead.py: error: --"), done.stderr
        assert option.partition("=")[0] in done.stderr.splitlines()[-1] and "Traceback" not in done.stderr
        assert not done.stdout


CHECK = """
import csv, json, os, tempfile
import overhead
from utils.train import run

root = tempfile.mkdtemp()
benches = {"example": overhead.Bench(root, overhead.Example(overhead.tiny_mlp(), 30)),
           "gan": overhead.Bench(root, overhead.Gan(30))}
found = {}
for name, bench, five in (("example", benches["example"], False), ("five", benches["example"], True),
                          ("gan", benches["gan"], False)):
    tables = []
    for seconds in (0.0, 1e9):  # every interval read back at its end; all at the round's end
        run.READ_BACK_SECONDS = seconds
        bench.template(3, True, five)
        folder = f"{root}/__result__/bench/{overhead.Bench.runs}"
        with open(f"{folder}/metrics.csv") as f:
            tables.append(f.read())
        with open(f"{folder}/statistic.json") as f:
            assert json.load(f)["status"] == "finished"
        kept = os.listdir(f"{folder}/checkpoint")  # at each round's end, and every 15 steps: the newest two
        assert {"epoch_3.pth", "step_60.pth", "epoch_last.pth"} <= set(kept), kept
    assert tables[0] == tables[1], (name, tables)
    rows = list(csv.DictReader(tables[0].splitlines()))
    # the short first epoch (10 steps) and two of 30: 3 + 10 + 10 rows of 3 steps, and a row per round
    assert [r["step"] for r in rows if not r.get("val/loss") and not r.get("val/d_x")] == [
        str(s) for s in [3, 6, 9, *range(13, 41, 3), *range(43, 71, 3)]], (name, rows)
    found[name] = sorted(k for k in rows[0] if k.endswith("_step"))
assert found["example"] == ["train/acc_step", "train/loss_step", "train/lr_step"], found
assert found["five"] == found["gan"] == sorted(f"train/{v}_step" for v in ("loss_d", "loss_g", "d_x", "d_g_z",
                                                                           "d_g_z2")), found
print("ok")
"""


@with_the_example
def test_overhead_runs_record_what_a_run_records():
    assert bench("-c", textwrap.dedent(CHECK), timeout=300) == ["ok"]


def test_latency_quick():
    lines = bench("latency.py", "--quick")
    assert lines[0].startswith("run: ") and " s from Enter to the first step" in lines[0]
    assert "import torch' alone" in lines[1] and "bare PyTorch script" in lines[3]
    assert lines[2].startswith("  then importing torch._dynamo, as the first optimizer does: ")
    assert lines[2].endswith(" s more") and float(lines[2].split()[-3]) > -1
    assert lines[4].startswith("100 runs (17 tags, one of them with 20 runs); python3 starts in ")
    commands = [line.rsplit(None, 2) for line in lines[5:11]]
    assert [c[0].strip() for c in commands] == ["expls", "expels (5 runs)", "expels (20 runs)", "record", "title",
                                                "table"]
    assert all(c[2] == "s" and float(c[1]) > 0 for c in commands)
    assert lines[11].startswith("goals: run at most 0.3 s beyond importing torch: ")


@with_the_example
def test_switches_quick():
    lines = bench("overhead.py", "--switches", "--quick")
    assert lines[0].startswith("the example's training, 1,439 images per epoch")
    names = [line.split(" samples/s")[0].rsplit(None, 1)[0].strip() for line in lines[1:]]
    assert names[:2] == ["none", "amp"] and names[-1] == "data loading alone"
    assert all(ratio(line.split(" samples/s")[1].split()[0]) > 0 for line in lines[1:])
    share = lines[-1].split("loading takes ")[1].split("%")[0]
    assert 0 < float(share) < 100, lines[-1]
