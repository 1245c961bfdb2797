"""The training state: what a checkpoint holds and how a run gets it back, exactly.

Usage: snap = snapshot(model, optimizer, scheduler, scaler, progress, extra)   # copies, cheap
       progress, extra = restore(torch.load(path, weights_only=False), model, optimizer, scheduler, scaler)

A resumed run must equal an uninterrupted one bit for bit, so besides the weights this holds
the optimizer, scheduler and AMP scaler, the progress (epoch, batch within the epoch, global
step, best metric), the partial-epoch metric values, and every random number generator.
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
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states):
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _copy(obj):
    """A CPU copy of every tensor inside obj, so the background write sees a frozen state."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copy(v) for v in obj)
    return obj


def unwrap(model):
    """The plain module under DistributedDataParallel and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def snapshot(model, optimizer, scheduler, scaler, progress, extra):
    return _copy({
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "progress": dict(progress),
        "rng": rng_states(),
        **extra,
    })


def restore(checkpoint, model, optimizer, scheduler, scaler):
    unwrap(model).load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    if scaler is not None and checkpoint["scaler"] is not None:
        scaler.load_state_dict(checkpoint["scaler"])
    set_rng_states(checkpoint["rng"])
    return checkpoint["progress"], checkpoint


def weights_sha256(model):
    """A hash of the final weights (names, dtypes, shapes, bytes): equal hashes, equal models."""
    digest = hashlib.sha256()
    for name, tensor in sorted(unwrap(model).state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
