"""statistic.json: the record of one run (schema 1). No torch here.

Usage: record = new_record(...); start_session(record, ...); write(folder, record); end_session(record, "finished")
       hyperparameters(config_module); config_changes(recorded, now)
"""
import getpass
import json
import os
import platform
import socket
import sys
from datetime import datetime, timezone

from utils.atomic import plain_json, write_json

SCHEMA = 1
PLAIN = (type(None), bool, int, float, str)


def now():
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds")


def time_of(path):
    """A file's last change, as a time of the record."""
    return datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc).astimezone().isoformat(timespec="milliseconds")


def plain(value, seen=()):
    """Plain data: None, bools, numbers, text, and lists, tuples and str-keyed dicts of them (no cycles)."""
    if isinstance(value, PLAIN):
        return True
    if id(value) in seen:
        return False
    seen = (*seen, id(value))
    if isinstance(value, (list, tuple)):
        return all(plain(v, seen) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v, seen) for k, v in value.items())
    return False


def _unrecordable(value, seen=()):
    """Why a config value could not be recorded as it is (None when it can)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "holds text that is not valid Unicode (a lone surrogate such as '\\udcff')"
        return None
    if isinstance(value, (list, tuple, dict)):
        if id(value) in seen:
            return "holds itself: a config value must be plain data"
        seen = (*seen, id(value))
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        return next((why for why in (_unrecordable(v, seen) for v in items) if why), None)
    return None


def config_problems(module):
    """The config names whose values statistic.json and the checkpoints could not hold, as sentences."""
    return [f"{name} {why}" for name, value in vars(module).items()
            if not name.startswith("_") and (why := _unrecordable(value))]


def _flatten(prefix, value, out):
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out)
    elif isinstance(value, tuple):
        out[prefix] = list(value)
    else:
        out[prefix] = value


def hyperparameters(module):
    """Every public name of the config module whose value is plain data, dicts flattened with dots."""
    out = {}
    for name, value in vars(module).items():
        if not name.startswith("_") and plain(value):
            _flatten(name, value, out)
    return out


def _canonical(value):
    """One text per value as a run records it: tuples read as lists (JSON has no tuples), NaN and
    the infinities as statistic.json writes them, so a config equals itself after a trip through it."""
    return json.dumps(plain_json(value), sort_keys=True, ensure_ascii=False, default=repr)


def config_changes(old, new, values=True):
    """'key old -> new' for each key whose value differs between two hyperparameters dicts (sorted;
    values=False: the keys alone). NaN equals NaN, and a tuple equals the list JSON made of it."""
    keys = sorted(k for k in old.keys() | new.keys()
                  if k not in old or k not in new or _canonical(old[k]) != _canonical(new[k]))
    if not values:
        return keys
    return [f"{k} {_short(old.get(k, '(none)'))} -> {_short(new.get(k, '(none)'))}" for k in keys]


def _short(value, limit=40):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def host_info(torch=None, world_size=1, devices=(), rank_devices=None):
    """The machine of the newest session; torch is passed in by the training process.

    rank_devices: "<hostname> <device>[ <name>]" of each rank, in rank order (under torchrun
    the ranks may sit on several machines; hostname and gpus are rank 0's).
    """
    cuda = torch.version.cuda if torch is not None else None
    try:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        memory_gb = 0
    return {
        "hostname": socket.gethostname(),
        "user": getpass.getuser(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__ if torch is not None else "",
        "cuda": cuda,
        "gpus": list(devices),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "memory_gb": memory_gb,
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "world_size": world_size,
        "devices": list(rank_devices) if rank_devices is not None else [],
        "threads": torch.get_num_threads() if torch is not None else None,  # per process; CPU sums may depend on it
    }


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def new_record(tag, id_, commit, subject, seed, fixed_seed, command, hparams):
    return {
        "schema": SCHEMA,
        "tag": tag, "id": id_,
        "status": "running",
        "commit": commit, "subject": subject,
        "seed": seed, "fixed_seed": fixed_seed,
        "command": command, "pid": os.getpid(),
        "started": None, "ended": None, "duration_s": None,
        "sessions": [],
        "host": {},
        "hyperparameters": hparams,
        "metrics": {},
        "weights_sha256": None,
        "error": None,
    }


def start_session(record, host, from_epoch, from_step, argv=None):
    started = now()
    record.update(status="running", pid=os.getpid(), host=host, ended=None, error=None)
    record["started"] = record["started"] or started
    record["sessions"].append({"started": started, "ended": None, "from_epoch": from_epoch,
                               "from_step": from_step, "argv": list(sys.argv if argv is None else argv)})


def end_session(record, status, error=None):
    ended = now()
    record.update(status=status, ended=ended, error=error)
    record["sessions"][-1]["ended"] = ended
    record["duration_s"] = round(sum(
        (datetime.fromisoformat(s["ended"]) - datetime.fromisoformat(s["started"])).total_seconds()
        for s in record["sessions"] if s["ended"]), 3)


def write(folder, record):
    write_json(os.path.join(folder, "statistic.json"), record)
