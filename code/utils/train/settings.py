"""The config keys the template reads: checked, then the run's arguments derived from config.py.

Usage: problems = check(config)   # no torch: `run` calls it before tagging, so a bad value creates nothing
       args = derive(config)      # in the training process: every config name, plus device, ranks, identity

Every other name of config.py belongs to the research and is checked by the research's own
code (main.py's check()). derive() adds what a run works out: the device, the process rank and
count, the folders, and the run's identity (tag, id, seed, commit), which `run`/`con`/`rerun`
pass in EXPER_* variables; a plain `python code/main.py` is a scratch run under
__result__/_scratch/.
"""
import os
import re
import secrets
import subprocess
from pathlib import Path
from types import ModuleType, SimpleNamespace


def _whole(low):
    def ok(value):
        return isinstance(value, int) and not isinstance(value, bool) and value >= low
    return ok, f"a whole number >= {low}"


def _name_or_none(value):
    return value is None or (isinstance(value, str) and value.strip() == value and value != "")


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")

# name -> (test, what the value must be); config.py marks these lines as the template's
KEYS = {
    "epochs": _whole(1),
    "max_steps": _whole(0),
    "eval_every_steps": _whole(0),
    "log_every_steps": _whole(0),
    "checkpoint_every_steps": _whole(0),
    "keep_checkpoints": _whole(1),
    "best_metric": (_name_or_none, 'None or a metric name such as "val/acc"'),
    "best_mode": (lambda v: v in ("max", "min"), '"max" or "min"'),
    "stop_on_nan": (_name_or_none, 'None or a step value\'s name such as "train/loss"'),
    "progress_bar": (lambda v: isinstance(v, bool), "True or False"),
    "device": (lambda v: isinstance(v, str) and bool(_DEVICE.fullmatch(v)), '"auto", "cpu", "cuda" or "cuda:<n>"'),
    "deterministic": (lambda v: isinstance(v, bool), "True or False"),
    "cpu_processes": _whole(1),
}
_MISSING = object()


def check(config):
    """Problems with the template's keys in config (a module or namespace), as sentences; empty when all is well."""
    problems = []
    for name, (ok, what) in KEYS.items():
        value = getattr(config, name, _MISSING)
        if value is _MISSING:
            problems.append(f"{name} is missing (a key the template reads: {what})")
        elif not ok(value):
            problems.append(f"{name} must be {what}, not {_short(value)}")
    return problems


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _git(code_dir, *argv):
    try:
        out = subprocess.run(["git", "-C", str(code_dir), *argv], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _identity(a, code_dir):
    """Who this run is: from `run`/`con`/`rerun`, or a new scratch run."""
    from utils.runs import allocate_id, run_dir

    env = os.environ
    if env.get("EXPER_RUN_DIR"):
        a.run_dir = env["EXPER_RUN_DIR"]
        a.tag, a.id = env["EXPER_TAG"], int(env["EXPER_ID"])
        a.seed, a.fixed_seed = int(env["EXPER_SEED"]), env.get("EXPER_FIXED_SEED") == "1"
        a.commit, a.subject = env.get("EXPER_COMMIT"), env.get("EXPER_SUBJECT")
        a.command, a.resume = env.get("EXPER_COMMAND", ""), env.get("EXPER_RESUME") == "1"
        return
    if a.rank != 0:  # a rank on a machine joining another's run: rank 0's identity comes in distributed.setup
        a.run_dir = a.tag = a.id = a.subject = None
        a.seed, a.fixed_seed, a.command, a.resume = 0, False, "", False
        a.commit = env.get("EXPER_COMMIT") or _git(code_dir, "rev-parse", "HEAD")  # compared with rank 0's
        return
    a.tag = "_scratch"
    a.id = allocate_id(a.root, a.tag)
    a.run_dir = str(run_dir(a.root, a.tag, a.id))
    a.seed = int(env.get("EXPER_SEED") or secrets.randbelow(2**31))
    a.fixed_seed = "EXPER_SEED" in env
    a.commit, a.subject = _git(code_dir, "rev-parse", "HEAD"), _git(code_dir, "log", "-1", "--format=%s")
    a.command, a.resume = "python code/main.py", False


def derive(config):
    """The run's arguments: config's public names, then device, ranks, folders and identity."""
    problems = check(config)
    if problems:
        from utils.train.errors import Refused

        raise Refused("code/config.py: " + "; ".join(problems))
    import torch

    code_dir = Path(config.__file__).resolve().parent if getattr(config, "__file__", None) else Path.cwd()
    a = SimpleNamespace(**{k: v for k, v in vars(config).items()
                           if not k.startswith("_") and not isinstance(v, ModuleType)})
    a.root = os.environ.get("EXPER_ROOT") or str(code_dir.parent)
    a.data_dir = os.path.join(a.root, "__data__")
    a.rank = int(os.environ.get("RANK", 0))
    a.world_size = int(os.environ.get("WORLD_SIZE", 1))
    a.local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = a.device
    if device == "auto":  # cpu_processes on a machine with one GPU: those processes use the CPU
        enough = torch.cuda.device_count() >= int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        device = "cuda" if torch.cuda.is_available() and enough else "cpu"
    if device == "cuda" and a.world_size > 1:
        device = f"cuda:{a.local_rank}"
    a.device = torch.device(device)
    if a.device.type == "cuda":
        torch.cuda.set_device(a.device)
    a.devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    _identity(a, code_dir)
    return a
