"""Did a rerun reproduce the earlier runs? Usage: print(verdict(root, tag, new_id))

Compares the new run with every earlier finished run of the tag that had the same seed:
exact means the same weights_sha256 and the same metrics; otherwise it names the metrics
that differ and by how much, and what differs in the recorded environment, so a difference
can be explained (another torch, another device, determinism off).
"""
from utils.runs import iter_runs, read_statistic, run_dir

ENVIRONMENT = ("torch", "cuda", "gpus", "cpu", "python", "world_size", "hostname")
SETTINGS = ("deterministic", "amp", "torch_compile", "device", "cpu_processes", "num_workers")


def _metric_changes(new, old):
    lines = []
    for key in sorted(new.keys() | old.keys()):
        a, b = new.get(key), old.get(key)
        if a == b:
            continue
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            lines.append(f"{key} {a:.6g} vs {b:.6g} ({a - b:+.3g})")
        else:
            lines.append(f"{key} {a!r} vs {b!r}")
    return lines


def _environment_changes(new, old):
    lines = []
    for key in ENVIRONMENT:
        a, b = new.get("host", {}).get(key), old.get("host", {}).get(key)
        if a != b:
            lines.append(f"{key} {a!r} vs {b!r}")
    for key in SETTINGS:
        a, b = new.get("hyperparameters", {}).get(key), old.get("hyperparameters", {}).get(key)
        if a != b:
            lines.append(f"config {key} {a!r} vs {b!r}")
    return lines


def verdict(root, tag, new_id):
    new = read_statistic(run_dir(root, tag, new_id))
    if new.get("status") != "finished":
        return f"{tag}/{new_id} did not finish ({new.get('status')}): nothing to compare"
    earlier = []
    for _, id_, folder in iter_runs(root, [tag]):
        if id_ == new_id:
            continue
        try:
            old = read_statistic(folder)
        except Exception:  # noqa: BLE001  (a broken earlier run is simply not compared)
            continue
        if old.get("status") == "finished" and old.get("seed") == new.get("seed"):
            earlier.append((id_, old))
    if not earlier:
        return f"{tag}/{new_id}: no earlier finished run of {tag} with seed {new.get('seed')} to compare with"
    lines = []
    for id_, old in earlier:
        metrics = _metric_changes(new.get("metrics", {}), old.get("metrics", {}))
        if not metrics and new.get("weights_sha256") == old.get("weights_sha256"):
            lines.append(f"reproduced {tag}/{id_} exactly: same weights_sha256 and metrics")
            continue
        lines.append(f"differs from {tag}/{id_}:")
        if new.get("weights_sha256") != old.get("weights_sha256"):
            lines.append("  weights_sha256 differs")
        lines += [f"  {m}" for m in metrics]
        env = _environment_changes(new, old)
        lines += [f"  environment: {e}" for e in env] or ["  environment: the same as recorded"]
    return "\n".join(lines)
