"""The cost benchmarks run to the end in their quick mode and print their figures (CI keeps them
working; the goals are judged from full runs, never here), and what overhead.py measures
records what it should: rows that do not depend on when the values were read back.
"""
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench(*argv, timeout=600):
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, check=False, timeout=timeout,
                          cwd=BENCH)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def ratio(text):
    assert text.endswith("x"), text
    return float(text[:-1])


def test_overhead_quick():
    lines = bench("overhead.py", "--quick")
    assert lines[0].startswith("tiny MLP, 1 torch thread, 200 steps")
    assert lines[1].split() == ["variant", "+µs/step", "vs", "bare", "middle", "half", "CPU", "vs", "bare", "own",
                                "µs/step", "own", "vs", "bare"]
    rows = lines[2:9]
    assert [r.split("  ")[0] for r in rows] == [
        "bare loop again (what noise looks like)",
        "peer floor: .item() into a Python list, JSON at the end",
        "peer: SummaryWriter.add_scalar, 4 scalars every step",
        "template, log every step", "template, log every 10 steps (shipped)",
        "template, log every step, checkpoints", "template, log every 10 steps, checkpoints"]
    for row in rows[:3]:
        added, wall, spread, cpu = row.split()[-4:]
        low, high = map(float, spread.split("-"))
        assert float(added) == float(added) and ratio(wall) > 0 and 0 < low <= high and ratio(cpu) > 0
    for row in rows[3:]:  # the template's variants also account for their own time
        added, wall, spread, cpu, own, own_ratio = row.split()[-6:]
        assert ratio(wall) > 0 and ratio(cpu) > 0 and float(own) > 0 and ratio(own_ratio) > 1
    assert lines[9].startswith("once per run, not per step") and lines[9].endswith(" ms")
    assert lines[10].startswith("each process alone, the median of its pairs")
    assert lines[11].startswith("goals (side by side): log every step at most 1.03x (")
    assert lines[12].startswith("goals (own time): log every step at most 1.03x (")


def test_overhead_pools_rounds_from_several_processes():
    # on the example's model: each measuring process must be told so, not only the first
    lines = bench("overhead.py", "--steps", "20", "--rounds", "2", "--processes", "2", "--example")
    assert lines[0].startswith("the example's CNN, "), lines[0]
    assert "per run, 2 round(s) of pairs in 2 process(es);" in lines[0], lines[0]
    alone = lines[10].partition("): ")[2].split(" | ")
    assert [a.rsplit(" ", 2)[0] for a in alone] == ["bare again", "log every step", "every 10 steps"], alone
    for figures in alone:  # one median per process
        assert all(ratio(x) > 0 for x in figures.split()[-2:]), figures


def test_overhead_refuses_sizes_it_cannot_measure():
    for option in ("--steps=3", "--rounds=0", "--processes=0"):
        done = subprocess.run([sys.executable, "overhead.py", option], capture_output=True, text=True, cwd=BENCH,
                              check=False, timeout=120)
        assert done.returncode == 2 and done.stderr.splitlines()[-1].startswith("overhead.py: error: --"), done.stderr
        assert "Traceback" not in done.stderr and not done.stdout


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


def test_switches_quick():
    lines = bench("overhead.py", "--switches", "--quick")
    assert lines[0].startswith("the example's training, 1,439 images per epoch")
    names = [line.split(" samples/s")[0].rsplit(None, 1)[0].strip() for line in lines[1:]]
    assert names[:2] == ["none", "amp"] and names[-1] == "data loading alone"
    assert all(ratio(line.split(" samples/s")[1].split()[0]) > 0 for line in lines[1:])
    share = lines[-1].split("loading takes ")[1].split("%")[0]
    assert 0 < float(share) < 100, lines[-1]
