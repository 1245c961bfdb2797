"""Named step values: read back whenever, the same rows and means; NaN named by its step; both read paths agree.

Usage: python3 -m pytest code/tests/test_values.py -q
"""
import math

import pytest
import torch

from utils.train.errors import NonFinite
from utils.train.values import StepValues, derive, host, means, pairs


def steps(n, nan_at=None):
    """n steps' values as a training step reports them: tensors with weights, a tensor weight, a number."""
    g = torch.Generator().manual_seed(0)
    out = []
    for k in range(1, n + 1):
        loss = torch.rand((), generator=g) if k != nan_at else torch.tensor(math.nan)
        out.append({"train/loss": (loss, 4 + k % 3), "train/tokens": (torch.rand((), generator=g), torch.tensor(k)),
                    "train/lr": 0.1 / k})
    return out


def collect(values, all_steps, read_at, every):
    """Feed the steps, reading back after the steps in read_at; rows, then the round's means."""
    sv, rows = StepValues(every), []
    for step, v in enumerate(all_steps, 1):
        sv.waiting.append(v)
        if step in read_at:
            rows += sv.collect(step, lambda s: 0)
    rows += sv.collect(len(all_steps), lambda s: 0, whole_round=True)
    return rows, sv.round_means()


@pytest.mark.parametrize("every", [0, 1, 3, 5])
def test_rows_and_means_do_not_depend_on_when_values_are_read_back(every):
    data = steps(23)
    reference = collect(None, data, set(), every)
    for read_at in ({6, 12, 18}, set(range(1, 24)), {1, 2, 22}, {7, 8, 9, 10}):
        assert collect(None, data, read_at, every) == reference
    rows, round_means = reference
    assert [r["step"] for r in rows] == ([every * k for k in range(1, 23 // every + 1)] if every else [])
    read = host(data)
    total = sum(s["train/loss"][0] for s in read) / sum(s["train/loss"][1] for s in read)
    assert round_means["train/loss"] == pytest.approx(total, rel=1e-12)
    assert round_means["train/lr"] == pytest.approx(sum(0.1 / k for k in range(1, 24)) / 23)
    if every:
        first = host(data[:every])
        assert rows[0]["train/loss_step"] == sum(s["train/loss"][0] for s in first) / sum(
            s["train/loss"][1] for s in first)


def test_a_non_finite_value_names_its_step():
    sv = StepValues(5, nan_name="train/loss")
    sv.waiting += steps(9, nan_at=7)
    with pytest.raises(NonFinite, match=r"train/loss is not finite at step 7 \(stop_on_nan\)"):
        sv.collect(9, lambda s: 0)
    sv = StepValues(5, nan_name=None)
    sv.waiting += steps(9, nan_at=7)
    sv.collect(9, lambda s: 0, whole_round=True)
    assert math.isnan(sv.round_means()["train/loss"])


def test_stacked_and_one_by_one_reads_give_the_same_numbers():
    values = [0.1, 1e-8, 3.4e38, math.nan, math.inf, 2.5]
    data = [{"v": (torch.tensor(x, dtype=torch.bfloat16 if k == 5 else torch.float32), torch.tensor(k + 1)),
             "n": x} for k, x in enumerate(values)]
    each, stacked = host(data, stack=False), host(data, stack=True)
    assert repr(each) == repr(stacked)
    assert [s["v"][1] for s in each] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] and each[0]["v"][0] != 0.1  # float32's 0.1


def test_weights_pairs_means_and_derived():
    assert pairs({"a": 2.0, "b": (torch.tensor(0.5), 4), "c": (1.0, 0)}) == {"a": (2.0, 1.0), "b": (2.0, 4.0),
                                                                          "c": (0.0, 0.0)}
    assert means({"a": [6.0, 3.0], "empty": [0.0, 0.0]}) == {"a": 2.0}
    row = derive({"val/loss": 2.0}, {"val/ppl": (math.exp, "val/loss"), "test/ppl": (math.exp, "test/loss")})
    assert row == {"val/loss": 2.0, "val/ppl": math.exp(2.0)}
    assert derive({"x_step": 1000.0}, {"y": (math.exp, "x")}, "_step")["y_step"] == math.inf  # too big: inf
