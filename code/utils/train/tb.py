"""TensorBoard event files, written fast. Usage:

    writer = EventWriter(run_folder / "tensorboard", purge_step=resumed_step)  # None on a fresh run
    writer.hparams(hyperparameters, metric_tags=("val/acc", "test/acc"))       # every session
    writer.graph(model, example_input)
    writer.scalars(step, {"train/loss": 0.3, "train/lr": 0.01})                # one event per call
    writer.image("samples", step, tensor)                                      # (C, H, W) or (H, W), PNG
    writer.hparams_end("finished")
    writer.close()

Each EventWriter opens a NEW event file (TFRecord framing, masked CRC32C) and writes Event
protos itself: scalars() costs a few µs where SummaryWriter.add_scalar costs tens per scalar
(see code/tests/test_tb.py, test_scalars_speed). The file is flushed at flush() and close();
between them the OS buffers it. One lock guards the file, so any thread may call; the training
loop's own thread should not (it hands its values to a background thread, which does).

TensorBoard's side of the contract, checked against TensorBoard itself in test_itb.py:
- purge_step: the new file starts with Event(step=s, file_version) and
  Event(step=s, session_log=START), so TensorBoard drops the older files' events at step >= s.
  The first session writes a START at step 0 as well: TensorBoard's Python loader treats a
  run's first START as its beginning, not a restart (torch's SummaryWriter omits it, so its
  purge_step purges nothing there). The Rust loader (--load_fast) ignores START and instead
  drops a series' points at and after any step written again; pass as purge_step the first
  step the resumed session writes and both loaders show the same single curve.
- hparams: only a SessionStartInfo per run, never an experiment-level summary (one such
  summary anywhere makes TensorBoard show that run's keys alone); with none, TensorBoard
  builds the experiment from all runs' SessionStartInfo: the union of their keys. Its metric
  columns are then every scalar tag of the runs, each with its last value. A key whose value
  is None in every run has no column (None is written as null, so a column's type comes from
  the runs that set it).
- hparams_end: TensorBoard keeps the FIRST SessionEndInfo a run ever writes (both loaders),
  and 2.21's Status has no ABORTED (UNKNOWN, SUCCESS, FAILURE, RUNNING only). So only
  "finished" writes one (STATUS_SUCCESS); a crashed or interrupted session writes none, else
  a run later finished by `con` would read FAILURE forever. An unfinished run shows as
  status unknown; statistic.json has the truth.
"""
import functools
import logging
import math
import os
import socket
import struct
import threading
import time
import warnings
from pathlib import Path

import google_crc32c
from google.protobuf import struct_pb2
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

log = logging.getLogger(__name__)

_FLOAT = struct.Struct("<f")
_DOUBLE = struct.Struct("<d")
_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_BYTE = [bytes((n,)) for n in range(0x80)]
_STATUS = {"finished": api_pb2.STATUS_SUCCESS}
# tensorboard.plugins.hparams.metadata's constants, written out: importing that module loads
# TensorBoard's TensorFlow stub and, through it, any cloud file system installed (0.15 s with
# boto3) before a run's first step; test_itb checks TensorBoard reads what they make
_HPARAMS_PLUGIN = "hparams"
_HPARAMS_VERSION = 0
_SESSION_START_TAG = "_hparams_/session_start_info"
_SESSION_END_TAG = "_hparams_/session_end_info"
_EMPTY = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim()])  # shape (0,)
_NULL_TENSOR = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=_EMPTY)  # the plugin's empty tensor
_KNOWN_STATUS = ("finished", "crashed", "interrupted")
_NOT_SCALARS = ("step", "epoch")


def masked_crc32c(data):
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@functools.lru_cache(maxsize=1024)
def _header(length):
    """A TFRecord's length and the masked CRC of it: a scalar event's length repeats, so kept."""
    data = _LENGTH.pack(length)
    return data + _CRC.pack(masked_crc32c(data))


def record(data):
    """One TFRecord: length, masked CRC of the length, data, masked CRC of the data."""
    return b"".join((_header(len(data)), data, _CRC.pack(masked_crc32c(data))))


def _varint(n):
    if n < 0x80:  # the usual cases in the hot path: a length, a step
        return _BYTE[n]
    if n < 0x4000:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _value_prefix(tag):
    """The bytes of Summary.value {tag, simple_value} up to the float: fixed per tag.

    Hand-encoded because scalars() is the hot path; test_tb checks it parses as the proto.
    """
    tag = tag.encode()
    inner = b"\x0a" + _varint(len(tag)) + tag + b"\x15"  # field 1 (tag), field 2 (simple_value, fixed32)
    return b"\x0a" + _varint(len(inner) + 4) + inner  # Summary field 1 (repeated value)


def _float32(value):
    try:
        return _FLOAT.pack(value)
    except OverflowError:  # beyond float32: TensorBoard would show inf too
        return _FLOAT.pack(math.copysign(math.inf, float(value)))


def _hparam_value(value):
    """A google.protobuf.Value: numbers as numbers, None as null, anything else as text."""
    v = struct_pb2.Value()
    if value is None:
        v.null_value = 0  # kept as a key; TensorBoard ignores nulls when it infers a column's type
    elif isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, (int, float)) and math.isfinite(value):
        v.number_value = value
    elif isinstance(value, str):
        v.string_value = value
    else:  # lists, tuples, nan/inf: their text, as tensorboard's own hparams summary does
        v.string_value = str(value)
    return v


def png(image):
    """(PNG bytes, height, width, channels) of an image tensor or array (see EventWriter.image)."""
    import io

    import numpy as np
    from PIL import Image

    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] not in (1, 3, 4):
        raise ValueError(f"an image is (C, H, W) with 1, 3 or 4 channels, or (H, W); not shape {tuple(array.shape)}")
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    channels, height, width = array.shape
    array = array[0] if channels == 1 else np.ascontiguousarray(array.transpose(1, 2, 0))
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue(), height, width, channels


class EventWriter:
    def __init__(self, logdir, purge_step=None):
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        # TensorBoard reads a folder's files in name order and skips a file that sorts before one
        # already read: seconds then microseconds keep the order of sessions started in one second.
        secs, usecs = divmod(int(now * 1e6), 1_000_000)
        name = f"events.out.tfevents.{secs:010d}.{usecs:06d}.{socket.gethostname()}.{os.getpid()}"
        self.path = self.logdir / name
        self._file = open(self.path, "xb")
        self._lock = threading.Lock()
        self._prefix = {}  # tag -> encoded bytes before its float
        self._graph_written = False
        self.start_step = int(purge_step or 0)
        self._write(event_pb2.Event(wall_time=now, step=self.start_step, file_version="brain.Event:2"))
        # TensorBoard takes a run's first START as its beginning and purges at each later one, so
        # the first session writes one too (else a resumed run's START would purge nothing);
        # a second writer of one session (no purge_step, older files present) must not.
        if purge_step is not None or not any("tfevents" in f.name and f != self.path for f in self.logdir.iterdir()):
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._write(event_pb2.Event(wall_time=now, step=self.start_step, session_log=start))

    def _write(self, event):
        self._write_records([event.SerializeToString()])

    def _write_records(self, events):
        """Serialized Events, each framed as a record, in one write."""
        data = b"".join([record(event) for event in events])
        with self._lock:
            self._file.write(data)

    def scalars(self, step, values, wall_time=None):
        """One Event, one Summary holding a simple_value per tag."""
        wall = _DOUBLE.pack(time.time() if wall_time is None else wall_time)
        self._write_records([self._scalar_event(int(step), values.items(), wall)])

    def scalar_rows(self, rows, wall_time=None):
        """scalars() of each row at once: its "step", and its values that are not None, but for "epoch",
        which is metrics.csv's column and an x axis, not a metric. One write for all (the hot path)."""
        wall = _DOUBLE.pack(time.time() if wall_time is None else wall_time)
        self._write_records([self._scalar_event(int(row["step"]), [(tag, value) for tag, value in row.items()
                                                                   if value is not None and tag not in _NOT_SCALARS],
                                                wall)
                             for row in rows])

    def _scalar_event(self, step, items, wall):
        prefix, parts = self._prefix, []
        for tag, value in items:
            p = prefix.get(tag)
            if p is None:
                p = prefix[tag] = _value_prefix(tag)
            parts.append(p)
            parts.append(_float32(value))
        summary = b"".join(parts)
        # Event: field 1 wall_time (double), 2 step (varint), 5 summary (bytes)
        return b"".join((b"\x09", wall, b"\x10", _varint(step & 0xFFFFFFFFFFFFFFFF), b"\x2a", _varint(len(summary)),
                         summary))

    def _hparams_event(self, tag, plugin_data):
        metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(
                plugin_name=_HPARAMS_PLUGIN, content=plugin_data.SerializeToString()
            )
        )
        value = summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=_NULL_TENSOR)
        summary = summary_pb2.Summary(value=[value])
        self._write(event_pb2.Event(wall_time=time.time(), step=self.start_step, summary=summary))

    def hparams(self, hparams, metric_tags=()):
        """This run's SessionStartInfo (see the module docstring for why nothing else).

        metric_tags (val/acc, test/acc) need nothing written here: without an experiment-level
        summary, which alone could name them, TensorBoard shows every scalar tag of the run as a
        metric with its last value, so they appear once scalars() has written them. A resumed
        session writes the same info again; TensorBoard keeps a run's first, so nothing shows twice.
        """
        info = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
        for name, value in hparams.items():
            info.hparams[str(name)].CopyFrom(_hparam_value(value))
        data = plugin_data_pb2.HParamsPluginData(version=_HPARAMS_VERSION, session_start_info=info)
        self._hparams_event(_SESSION_START_TAG, data)

    def hparams_end(self, status):
        """Status 'finished' -> STATUS_SUCCESS; 'crashed' and 'interrupted' write nothing (see above)."""
        if status not in _KNOWN_STATUS:
            raise ValueError(f"status {status!r}: expected one of {', '.join(_KNOWN_STATUS)}")
        if status not in _STATUS:
            return
        info = plugin_data_pb2.SessionEndInfo(status=_STATUS[status], end_time_secs=time.time())
        data = plugin_data_pb2.HParamsPluginData(version=_HPARAMS_VERSION, session_end_info=info)
        self._hparams_event(_SESSION_END_TAG, data)

    def image(self, tag, step, image):
        """One image: a tensor or array (C, H, W) with 1, 3 or 4 channels, or (H, W); floats in [0, 1] or uint8,
        encoded as PNG by Pillow (what TensorBoard's image plugin reads in a Summary.Image)."""
        data, height, width, channels = png(image)
        picture = summary_pb2.Summary.Image(height=height, width=width, colorspace=channels,
                                            encoded_image_string=data)
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=picture)])
        self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def graph(self, model, example_input):
        """The model's graph, once per writer; a model that does not trace logs a warning only.

        Call it before training starts, not beside it: tracing runs the model in eval mode.
        """
        if self._graph_written:
            return
        try:
            from torch.utils.tensorboard._pytorch_graph import graph

            with warnings.catch_warnings():  # TensorBoard's graph plugin reads jit traces only
                warnings.filterwarnings("ignore", r".*torch\.jit\.trace.* is deprecated", DeprecationWarning)
                graph_def, _ = graph(model, example_input)
            self._write(event_pb2.Event(wall_time=time.time(), step=0, graph_def=graph_def.SerializeToString()))
            self._graph_written = True
        except Exception as e:  # noqa: BLE001  (a graph is a nicety: never the reason a run fails)
            log.warning("TensorBoard graph not written: %s: %s", type(e).__name__, e)

    def flush(self):
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def close(self):
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
