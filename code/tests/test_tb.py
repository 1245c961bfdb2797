"""The event writer, read back by TensorBoard's own code. Usage: python3 -m pytest code/tests/test_tb.py -q

What a TensorBoard server makes of these files (run names, HParams union, purge over HTTP) is
in test_itb.py; here: the records themselves, purge in TensorBoard's Python loader, the graph,
and the speed of scalars() against torch's SummaryWriter.
"""
import logging
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.plugins.hparams import api_pb2, metadata

from conftest import CODE
from utils.train import tb


def events(folder):
    """Every Event of the folder's files, in file-name order, through TensorBoard's reader (checks CRCs)."""
    files = sorted(p for p in Path(folder).iterdir() if "tfevents" in p.name)
    return [event_pb2.Event.FromString(r) for f in files for r in RawEventFileLoader(str(f)).Load()]


def test_masked_crc_matches_tensorboards():
    for data in (b"", b"a", bytes(range(256)) * 3):
        assert tb.masked_crc32c(data) == masked_crc32c(data)


def test_scalars_are_one_event_equal_to_the_proto(tmp_path):
    long_tag = "val/" + "x" * 200  # a tag longer than 127 bytes needs a two-byte length
    values = {"train/loss": 0.25, "val/acc": 0.875, "lr": 1e-3, "über/ü": -2, long_tag: 7.5}
    with tb.EventWriter(tmp_path) as w:
        w.scalars(0, values, wall_time=1.5)
        w.scalars(2**40, {"train/loss": 1e40, "nan": math.nan}, wall_time=2.5)
        w.scalars(-3, {"lr": 0.5}, wall_time=3.5)
    first, start, a, b, c = events(tmp_path)
    assert first.file_version == "brain.Event:2" and first.step == 0
    assert start.session_log.status == event_pb2.SessionLog.START
    expected = event_pb2.Event(wall_time=1.5, step=0, summary=summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in values.items()]))
    assert a == expected
    assert [round(v.simple_value, 6) for v in a.summary.value] == [0.25, 0.875, 0.001, -2.0, 7.5]
    assert b.step == 2**40 and b.summary.value[0].simple_value == math.inf
    assert math.isnan(b.summary.value[1].simple_value)
    assert c.step == -3 and c.wall_time == 3.5 and c.summary.value[0].simple_value == 0.5


def test_scalar_rows_are_an_event_per_row_without_step_and_empty_cells(tmp_path):
    """The recorder's path: metrics.csv's rows, "step" as the event's step, None cells and "epoch" left out."""
    rows = [{"epoch": 0, "step": 10, "train/loss_step": 0.5, "lr": None},
            {"epoch": 1, "step": 20_000, "val/acc": 0.75, "train/loss_step": None}]
    with tb.EventWriter(tmp_path) as w:
        w.scalar_rows(rows, wall_time=4.5)
    written = {10: [("train/loss_step", 0.5)], 20_000: [("val/acc", 0.75)]}  # epoch is an axis, not a scalar
    assert events(tmp_path)[2:] == [
        event_pb2.Event(wall_time=4.5, step=step, summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in values]))
        for step, values in written.items()]


def test_each_writer_opens_a_new_file_in_session_order(tmp_path):
    names = []
    for _ in range(3):
        with tb.EventWriter(tmp_path / "tensorboard") as w:
            names.append(w.path.name)
    assert len(set(names)) == 3 and names == sorted(names)  # TensorBoard reads them in name order


def test_purge_on_resume_in_tensorboards_loader(tmp_path):
    with tb.EventWriter(tmp_path) as w:  # session 1 got to step 7, its last checkpoint was at 5
        for step in range(8):
            w.scalars(step, {"train/loss": 100 + step})
    with tb.EventWriter(tmp_path, purge_step=5) as w:
        for step in range(5, 10):
            w.scalars(step, {"train/loss": 200 + step})
    accumulator = EventAccumulator(str(tmp_path))
    accumulator.Reload()
    points = [(e.step, float(e.tensor_proto.float_val[0])) for e in accumulator.Tensors("train/loss")]
    assert points == [(s, 100.0 + s) for s in range(5)] + [(s, 200.0 + s) for s in range(5, 10)]


def test_hparams_session_info_and_end_status(tmp_path):
    hparams = {"lr": 0.01, "batch_size": 64, "optim.momentum": 0.9, "name": "adam", "nesterov": True,
               "schedule": None, "milestones": [3, 6]}
    with tb.EventWriter(tmp_path) as w:
        w.hparams(hparams, metric_tags=("val/acc",))
        w.hparams_end("crashed")  # writes nothing: TensorBoard would keep it over a later success
        w.hparams_end("interrupted")
        w.hparams_end("finished")
        with pytest.raises(ValueError):
            w.hparams_end("done")
    infos = [v for e in events(tmp_path) for v in e.summary.value if v.metadata.plugin_data.plugin_name == "hparams"]
    assert [v.tag for v in infos] == [metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG]
    assert all(v.tensor == metadata.NULL_TENSOR for v in infos)  # tb.py writes the plugin's constants out
    start = metadata.parse_session_start_info_plugin_data(infos[0].metadata.plugin_data.content)
    got = {k: v.WhichOneof("kind") for k, v in start.hparams.items()}
    assert got == {"lr": "number_value", "batch_size": "number_value", "optim.momentum": "number_value",
                   "name": "string_value", "nesterov": "bool_value", "schedule": "null_value",
                   "milestones": "string_value"}
    assert start.hparams["batch_size"].number_value == 64 and start.hparams["milestones"].string_value == "[3, 6]"
    end = metadata.parse_session_end_info_plugin_data(infos[1].metadata.plugin_data.content)
    assert end.status == api_pb2.STATUS_SUCCESS


def test_graph_written_once_and_never_fatal(tmp_path, caplog):
    import torch

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("cannot trace me")

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with tb.EventWriter(tmp_path) as w:
        with caplog.at_level(logging.WARNING, logger="utils.train.tb"):
            w.graph(Broken(), torch.zeros(1, 3))
        assert "graph not written" in caplog.text and "cannot trace me" in caplog.text
        w.graph(model, torch.zeros(1, 3))
        w.graph(model, torch.zeros(1, 3))
    graphs = [e for e in events(tmp_path) if e.HasField("graph_def")]
    assert len(graphs) == 1
    from tensorboard.compat.proto.graph_pb2 import GraphDef
    ops = {node.op for node in GraphDef.FromString(graphs[0].graph_def).node}
    assert "aten::linear" in ops and "aten::relu" in ops


@pytest.mark.parametrize("module, banned", [("utils.train.tb", ["torch", "tensorboard.compat.tensorflow_stub"]),
                                            ("utils.statistic.itb", ["torch", "tensorboard"])])
def test_imports_stay_light(module, banned):
    check = (f"import sys; sys.path.insert(0, {str(CODE)!r}); import {module}; "
             f"print([m for m in {banned!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_scalars_speed(tmp_path):
    """µs per step logging 4 scalars: scalars() against SummaryWriter.add_scalar x4 (time inside the calls)."""
    from torch.utils.tensorboard import SummaryWriter

    steps, names = 2000, ("train/loss", "train/acc", "lr", "grad_norm")

    def timed(log_step):
        start = time.perf_counter()
        for step in range(steps):
            log_step(step, 0.5 + step * 1e-4)
        return (time.perf_counter() - start) / steps * 1e6

    ours = tb.EventWriter(tmp_path / "ours")
    ours_us = timed(lambda step, x: ours.scalars(step, {n: x for n in names}))
    ours.close()
    theirs = SummaryWriter(str(tmp_path / "torch"))
    torch_us = timed(lambda step, x: [theirs.add_scalar(n, x, step) for n in names])
    theirs.close()
    print(f"\n4 scalars per step: EventWriter.scalars {ours_us:.1f} µs, SummaryWriter.add_scalar x4 {torch_us:.1f} µs")
    assert len(events(tmp_path / "ours")) == steps + 2
    assert ours_us * 3 < torch_us
