"""What the benchmarks share. Usage: pairs = paired({"bare": run_bare, "b": run_b}, "bare", rounds=9)

The machine is shared, so a benchmark never compares figures taken minutes apart: each variant
runs right beside the baseline (ABAB...), round after round, the order reversed every other
round so that a slow drift weighs on all alike, and the figures are medians of the ratios of
those pairs.
"""
import statistics
import sys
from pathlib import Path

CODE = Path(__file__).resolve().parents[1]


def on_path():
    """Put code/ on sys.path (as main.py has it), so the template's own modules import."""
    if str(CODE) not in sys.path:
        sys.path.insert(0, str(CODE))


def paired(trials, base, rounds, warmup=1, beside=None):
    """{name: [(base's measure, name's measure) of each round]}: every trial but base runs right
    beside a run of base, the pair's order alternating, so the two see the same load. beside:
    {name: another base} for trials that have a baseline of their own, in the same rounds."""
    beside = {name: (beside or {}).get(name, base) for name in trials}
    bases = {base, *beside.values()}
    for _ in range(warmup):
        for trial in trials.values():
            trial()
    pairs = {name: [] for name in trials if name not in bases}
    for r in range(rounds):
        names = list(pairs) if r % 2 == 0 else list(reversed(pairs))
        for name in names:
            if r % 2 == 0:
                b, x = trials[beside[name]](), trials[name]()
            else:
                x, b = trials[name](), trials[beside[name]]()
            pairs[name].append((b, x))
    return pairs


def median(values):
    return statistics.median(values)
