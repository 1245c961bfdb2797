"""What a checkpoint holds, and how a run gets it back, exactly. The one place that decides it.

Usage: snap = snapshot(objects, progress, values, rng, epoch_rng, identity, into=previous_snap)
       restore_objects(saved, objects); set_rng(saved["rng"][rank])

A resumed run must equal an uninterrupted one bit for bit, so a checkpoint holds:
- "objects": the state_dict() of every object the research handed to run.keep(), by name
  (models, optimizers, schedulers, a GradScaler, anything with state_dict/load_state_dict);
- "progress": epoch, batch within the epoch, global step, round, the round's first step, best;
- "values": the step values read back but not yet summed into a whole logging interval, of
  every rank, and the round's sums so far;
- "rng": every rank's random generators as they were at the checkpoint, and "epoch_rng": as
  they were when the current data epoch began (with the training loader's own generators), so
  a resumed run can open the epoch's iterator exactly as the first session did;
- "identity": the run's config, commit, seed and process count (mismatch() refuses a
  checkpoint that is not the run's own).
Everything is tensors and plain Python values (NumPy's RNG state is stored as a tensor), so
checkpoints load with torch.load(weights_only=True) and a planted pickle cannot run code.

snapshot() is all a checkpoint costs the training loop: a copy to host memory. It copies into
the tensors of the previous snapshot when their shapes still fit (`into`), because copying
into memory already touched is faster than into fresh pages (code/bench/checkpoint_stall.py).
The caller makes sure the previous snapshot's write is over before it is reused.
"""
import hashlib
import random

import numpy as np
import torch

FORMAT = 2  # checkpoints of the first format (one model, one optimizer) do not load


def rng_states():
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
        # the current device's generator: one process trains on one device, and asking for every
        # device's state would open a CUDA context on each GPU from every process. A run that never
        # touched CUDA has nothing to save (its lazy seed from manual_seed is set again on resume).
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_initialized() else None,
    }


def set_rng_states(states):
    random.setstate(_tuples(states["python"]))
    kind, keys, *rest = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def _tuples(value):
    """random.setstate wants the tuples it gave; a checkpoint may hand back lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def parts(loader):
    """The loader and the samplers inside it, each once: its sampler and batch sampler, and theirs
    (a BatchSampler over a DistributedSampler, handed over as sampler= or batch_sampler=)."""
    found, todo = [], [loader]
    while todo:
        part = todo.pop(0)
        if part is not None and all(part is not f for f in found):
            found.append(part)
            todo += [getattr(part, "sampler", None), getattr(part, "batch_sampler", None)]
    return found


def generators(loader):
    """The torch.Generators a DataLoader draws from when an epoch's iterator is made: its own and
    its samplers' (DataLoader(shuffle=True, generator=g) gives g to its RandomSampler)."""
    found = []
    for part in parts(loader):
        g = getattr(part, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not f for f in found):
            found.append(g)
    return found


def epoch_states(loader):
    """The random state a data epoch's iterator is made from: the global generators and the loader's."""
    return {**rng_states(), "loader": [g.get_state() for g in generators(loader)]}


def set_epoch_states(states, loader):
    set_rng_states(states)
    for g, saved in zip(generators(loader), states["loader"], strict=False):
        g.set_state(saved)


def _fits(buffer, tensor):
    return (isinstance(buffer, torch.Tensor) and buffer.shape == tensor.shape and buffer.dtype == tensor.dtype
            and buffer.device.type == "cpu")


def _copy(obj, into=None):
    """A CPU copy of every tensor inside obj (new containers too), so the background write sees a
    frozen state; same-shaped tensors of `into` (an earlier copy) are reused as the buffers."""
    if isinstance(obj, torch.Tensor):
        obj = obj.detach()
        if not _fits(into, obj):
            # pinned host memory lets the device-to-host copies run asynchronously, all at once
            into = torch.empty(obj.shape, dtype=obj.dtype, pin_memory=obj.is_cuda)
        return into.copy_(obj, non_blocking=obj.is_cuda)
    if isinstance(obj, dict):
        into = into if isinstance(into, dict) else {}
        return {k: _copy(v, into.get(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        into = into if isinstance(into, (list, tuple)) and len(into) == len(obj) else [None] * len(obj)
        return type(obj)(_copy(v, w) for v, w in zip(obj, into, strict=True))
    return obj


def unwrap(model):
    """The plain module under DistributedDataParallel and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def snapshot(objects, progress, values, rng, epoch_rng, identity, into=None):
    """The whole checkpoint, copied to host memory. rng, epoch_rng: one entry per rank."""
    snap = _copy({
        "format": FORMAT,
        "objects": {name: unwrap(obj).state_dict() for name, obj in objects.items()},
        "progress": dict(progress),
        "values": values,
        "rng": rng,
        "epoch_rng": epoch_rng,
        "identity": identity,
    }, into)
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()  # the asynchronous copies have landed before the writer reads them
    return snap


def restore_objects(saved, objects, only=None):
    """Load each kept object's state (only: the names to load, say the models of the best checkpoint)."""
    states = saved["objects"]
    missing = sorted(set(objects) - set(states))
    if missing:
        from utils.train.errors import Refused

        raise Refused(f"the checkpoint holds no {', '.join(missing)} (it has {', '.join(sorted(states))})")
    for name, obj in objects.items():
        if only is None or name in only:
            unwrap(obj).load_state_dict(states[name])


def mismatch(saved, identity):
    """Why a checkpoint is not this run's own (another format, commit, config or process count), or None.

    con already checks that the tag still marks the run's commit and config; this catches a
    checkpoint folder copied from another run, or a run folder moved under another tag. Another
    number of processes would split the data differently: the resumed run could not be exact.
    """
    from utils.statistic.run_record import config_changes

    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        return "it is not a checkpoint of this template's format (an older template's, or no checkpoint at all)"
    theirs, reasons = saved.get("identity") or {}, []
    if theirs.get("commit") != identity["commit"]:
        reasons.append(f"it was written by commit {str(theirs.get('commit'))[:10]}, "
                       f"this run is {str(identity['commit'])[:10]}")
    changed = config_changes(theirs.get("config") or {}, identity["config"])
    if changed:
        reasons.append(f"it was written with another config ({', '.join(changed[:5])})")
    if theirs.get("world_size", 1) != identity["world_size"]:
        reasons.append(f"it was written by {theirs.get('world_size', 1)} processes, "
                       f"this run has {identity['world_size']}")
    return "; ".join(reasons) or None


def weights_sha256(objects):
    """A hash of the final weights of every kept model (names, dtypes, shapes, bytes): equal hashes, equal models."""
    digest = hashlib.sha256()
    for model_name, model in sorted(objects.items()):
        if not isinstance(unwrap(model), torch.nn.Module):
            continue
        for name, tensor in sorted(unwrap(model).state_dict().items()):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{model_name}.{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
