"""Derive and check the run's arguments from config.py. Usage: args = process(config)

check(config) needs no torch: `run` calls it before tagging, so a bad config creates nothing.
process(config) adds what a run derives: device, process rank, folders, seed and identity
(passed by `run`/`con`/`rerun` in EXPER_* variables; a plain `python code/main.py` is a
scratch run under __result__/_scratch/).
"""
import os
import secrets
import subprocess
from pathlib import Path
from types import ModuleType, SimpleNamespace

CHOICES = {"optimizer": ("sgd", "adamw"), "best_mode": ("max", "min")}
COUNTS = ("epochs", "batch_size", "eval_batch_size", "keep_checkpoints")
NON_NEGATIVE = ("log_every_steps", "checkpoint_every_steps", "num_workers", "warmup_epochs", "grad_clip", "lr")


def check(config):
    """Problems with the config's values, as sentences (empty when all is well)."""
    problems = []
    for name, allowed in CHOICES.items():
        if getattr(config, name, None) not in allowed:
            problems.append(f"{name} must be one of {', '.join(map(repr, allowed))}")
    for name in COUNTS:
        value = getattr(config, name, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{name} must be a whole number >= 1, not {value!r}")
    for name in NON_NEGATIVE:
        value = getattr(config, name, None)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            problems.append(f"{name} must be a number >= 0, not {value!r}")
    if not 0 <= config.val_fraction * 10 + config.test_fraction * 10 < 10:
        problems.append("val_fraction + test_fraction must be below 1 (tenths)")
    if not isinstance(config.cpu_processes, int) or config.cpu_processes < 1:
        problems.append(f"cpu_processes must be a whole number >= 1, not {config.cpu_processes!r}")
    return problems


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
        a.commit = _git(code_dir, "rev-parse", "HEAD")  # compared with rank 0's
        return
    a.tag = "_scratch"
    a.id = allocate_id(a.root, a.tag)
    a.run_dir = str(run_dir(a.root, a.tag, a.id))
    a.seed = int(env.get("EXPER_SEED") or secrets.randbelow(2**31))
    a.fixed_seed = "EXPER_SEED" in env
    a.commit, a.subject = _git(code_dir, "rev-parse", "HEAD"), _git(code_dir, "log", "-1", "--format=%s")
    a.command, a.resume = "python code/main.py", False


def process(config):
    problems = check(config)
    if problems:
        raise SystemExit("error: code/config.py: " + "; ".join(problems))
    import torch

    code_dir = Path(__file__).resolve().parent
    a = SimpleNamespace(**{k: v for k, v in vars(config).items()
                           if not k.startswith("_") and not isinstance(v, ModuleType)})
    a.root = os.environ.get("EXPER_ROOT") or str(code_dir.parent)
    a.data_dir = os.path.join(a.root, "__data__")
    a.rank = int(os.environ.get("RANK", 0))
    a.world_size = int(os.environ.get("WORLD_SIZE", 1))
    a.local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if a.device == "auto":  # config.cpu_processes on a machine with one GPU: those processes use the CPU
        enough = torch.cuda.device_count() >= int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        a.device = "cuda" if torch.cuda.is_available() and enough else "cpu"
    if a.device == "cuda" and a.world_size > 1:
        a.device = f"cuda:{a.local_rank}"
    a.device = torch.device(a.device)
    if a.device.type == "cuda":
        torch.cuda.set_device(a.device)
    a.devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    a.amp_dtype = torch.bfloat16 if a.device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    _identity(a, code_dir)
    return a
