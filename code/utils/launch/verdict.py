"""Did a rerun reproduce the earlier runs? Usage: print(verdict(root, tag, new_id))

Compares the new run with every earlier finished run of the tag that had the same seed (runs
with another seed are not comparable, so they are not compared): exact means the same
weights_sha256 and the same metrics. Otherwise it names the metrics that differ and by how
much. Either way it lists what differs in what the runs recorded about themselves: the
commit (a tag moved with `git tag -f`), the config, the machine and its software (another
torch, another device, another number of torch threads, determinism off), so a difference can
be explained and an exact reproduction across machines is known to be one. No torch here: it
reads statistic.json only.
"""
from utils.runs import iter_runs, read_statistic, run_dir

# what host_info() records that can change results; user, hostname and memory cannot
ENVIRONMENT = ("torch", "cuda", "gpus", "visible_devices", "world_size", "threads", "cpu", "cpu_count", "python", "os")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _changes(new, old, keys=None, label=""):
    """A line for each key whose value differs (keys: all of either's, sorted)."""
    lines = []
    for key in sorted(new.keys() | old.keys()) if keys is None else keys:
        a, b = new.get(key), old.get(key)
        if a == b:
            continue
        if _number(a) and _number(b):
            lines.append(f"{label}{key} {a:.6g} vs {b:.6g} ({a - b:+.3g})")
        else:
            lines.append(f"{label}{key} {a!r} vs {b!r}")
    return lines


def environment_changes(new, old):
    """What the two runs recorded differently about how they ran: commit, config, machine."""
    lines = []
    if new.get("commit") != old.get("commit"):
        lines.append(f"commit {str(new.get('commit'))[:10]} vs {str(old.get('commit'))[:10]} (the tag was moved)")
    lines += _changes(new.get("hyperparameters") or {}, old.get("hyperparameters") or {}, label="config ")
    lines += _changes(new.get("host") or {}, old.get("host") or {}, ENVIRONMENT)
    return lines


def _earlier(root, tag, new_id, seed):
    for _, id_, folder in iter_runs(root, [tag]):
        if id_ == new_id:
            continue
        try:
            old = read_statistic(folder)
        except Exception:  # noqa: BLE001  (a broken earlier run is simply not compared)
            continue
        if old.get("status") == "finished" and old.get("seed") == seed:
            yield id_, old


def verdict(root, tag, new_id):
    new = read_statistic(run_dir(root, tag, new_id))
    if new.get("status") != "finished":
        return f"{tag}/{new_id} did not finish ({new.get('status')}): nothing to compare"
    earlier = list(_earlier(root, tag, new_id, new.get("seed")))
    if not earlier:
        return (f"{tag}/{new_id}: no earlier finished run of {tag} with seed {new.get('seed')} to compare with "
                f"(`rerun {tag}/<id>` reuses that run's seed)")
    envs = [environment_changes(new, old) for _, old in earlier]
    once = all(env == envs[0] for env in envs)  # the usual case: say it once, after every run's verdict
    lines = []
    for (id_, old), env in zip(earlier, envs, strict=True):
        metrics = _changes(new.get("metrics") or {}, old.get("metrics") or {})
        same_weights = new.get("weights_sha256") == old.get("weights_sha256")
        exact = same_weights and not metrics
        if exact:
            lines.append(f"reproduced {tag}/{id_} exactly: same weights_sha256 and metrics")
        else:
            lines.append(f"differs from {tag}/{id_}:")
            lines += [] if same_weights else ["  weights_sha256 differs"]
            lines += [f"  {m}" for m in metrics]
        if not once:
            lines += _explained(env, exact)
    if once:
        exact_all = all(line.startswith("reproduced") for line in lines if not line.startswith("  "))
        lines += _explained(envs[0], exact_all)
    return "\n".join(lines)


def _explained(env, exact):
    lines = [f"  recorded differently: {e}" for e in env]
    if not env and not exact:  # nothing explains it: nondeterminism the settings did not catch
        lines.append("  recorded the same: commit, config, machine and software")
    return lines
