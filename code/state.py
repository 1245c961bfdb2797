"""The training state: what a checkpoint holds and how a run gets it back, exactly.

Usage: snap = snapshot(model, optimizer, scheduler, scaler, progress, extra, into=previous_snap)
       progress, saved = restore(checkpoint.load(path), model, optimizer, scheduler, scaler)

A resumed run must equal an uninterrupted one bit for bit, so besides the weights this holds
the optimizer, scheduler and AMP scaler, the progress (epoch, batch within the epoch, global
step, best metric), the partial-epoch metric values, every random number generator, and the
run's config and commit (main.py refuses a checkpoint that is not the run's own: mismatch()).

snapshot() is all a checkpoint costs the training loop: a copy to host memory. It copies into
the tensors of the previous snapshot when their shapes still fit (`into`), because copying
into memory already touched is faster than into fresh pages, which the kernel must first find
and zero (code/bench/checkpoint_stall.py: columns `fresh` and `stall`). The price is one host
copy of the state kept for the whole run. The caller must make sure the previous snapshot's
write is over (Recorder.checkpoint waits for it).
"""
import hashlib
import random

import numpy as np
import torch


def rng_states():
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        # the current device's generator: one process trains on one device, and asking for every
        # device's state would open a CUDA context on each GPU from every process. A run that never
        # touched CUDA has nothing to save (its lazy seed from manual_seed is set again on resume).
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_initialized() else None,
    }


def set_rng_states(states):
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


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


def snapshot(model, optimizer, scheduler, scaler, progress, extra, into=None):
    snap = _copy({
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "progress": dict(progress),
        "rng": rng_states(),
        **extra,
    }, into)
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()  # the asynchronous copies have landed before the writer reads them
    return snap


def restore(checkpoint, model, optimizer, scheduler, scaler):
    unwrap(model).load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    if scaler is not None and checkpoint["scaler"] is not None:
        scaler.load_state_dict(checkpoint["scaler"])
    set_rng_states(checkpoint["rng"])
    return checkpoint["progress"], checkpoint


def mismatch(checkpoint, hparams, commit, world_size=1):
    """Why a checkpoint is not this run's own (another commit, config or process count), or None.

    con already checks that the tag still marks the run's commit and config; this catches a
    checkpoint folder copied from another run, or a run folder moved under another tag. Another
    number of processes would split the data differently: the resumed run could not be exact.
    """
    reasons = []
    if checkpoint.get("commit") != commit:
        reasons.append(f"it was written by commit {str(checkpoint.get('commit'))[:10]}, this run is {str(commit)[:10]}")
    saved = checkpoint.get("config") or {}
    changed = sorted(k for k in saved.keys() | hparams.keys() if saved.get(k) != hparams.get(k))
    if changed:
        shown = ", ".join(f"{k} {saved.get(k)!r} -> {hparams.get(k)!r}" for k in changed[:5])
        reasons.append(f"it was written with another config ({shown})")
    if checkpoint.get("world_size", 1) != world_size:
        reasons.append(f"it was written by {checkpoint.get('world_size', 1)} processes, this run has {world_size}")
    return "; ".join(reasons) or None


def weights_sha256(model):
    """A hash of the final weights (names, dtypes, shapes, bytes): equal hashes, equal models."""
    digest = hashlib.sha256()
    for name, tensor in sorted(unwrap(model).state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
