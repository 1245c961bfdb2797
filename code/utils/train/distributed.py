"""Several processes under torchrun: one group, one identity, one decision to stop, one cause of failure.

Usage (utils/train/run.py):  distributed.setup(args, hparams)       # group, rank 0's identity, same code?
                             distributed.reduce(tensor, args)        # sums over the ranks
                             stop = AgreedStop(args); signum = stop.poll(local_signum)   # every step
                             path, saved = distributed.load_checkpoint(args)   # on `con`: one checkpoint for all
                             everyone = distributed.gather(obj, args)      # on rank 0: every rank's obj
       (main.py, through utils.train.train):  sys.exit(distributed.report(main))

Rank 0 is the run: it alone writes the run folder, and every other rank takes its identity
(folder, tag, id, seed), so a machine that joined a run creates nothing. With one process
every function here does nothing but hand back what it was given.
"""
import os
import socket
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as dist

from utils.atomic import write_json
from utils.statistic.run_record import config_changes
from utils.train.errors import Refused, error_text

IDENTITY = ("run_dir", "tag", "id", "seed", "fixed_seed", "commit", "subject", "command", "resume")


def describe(args):
    """This rank's machine and device, as recorded in statistic.json host.devices."""
    name = f" {torch.cuda.get_device_name(args.device)}" if args.device.type == "cuda" else ""
    return f"{socket.gethostname()} {args.device}{name}"


def setup(args, hparams):
    """Join the process group; take rank 0's identity; refuse ranks that run other code or config."""
    args.rank_devices = [describe(args)]
    if args.world_size == 1:
        return
    dist.init_process_group("nccl" if args.device.type == "cuda" else "gloo")
    mine = {"host": socket.gethostname(), "commit": args.commit, "config": hparams, "device": describe(args),
            "identity": {k: getattr(args, k) for k in IDENTITY}}
    everyone = [None] * args.world_size
    dist.all_gather_object(everyone, mine)
    first = everyone[0]
    for rank, other in enumerate(everyone):  # every rank sees the same list: all raise the same error
        if other["commit"] != first["commit"]:
            raise Refused(f"rank {rank} on {other['host']} runs commit {str(other['commit'])[:10]}, "
                          f"rank 0 on {first['host']} runs {str(first['commit'])[:10]}: "
                          "check out the same commit on every machine")
        changed = config_changes(first["config"], other["config"], values=False)
        if changed:
            raise Refused(f"rank {rank} on {other['host']} has another code/config.py than rank 0 "
                          f"({', '.join(changed[:5])}): commit the same config on every machine")
    for key, value in first["identity"].items():  # a joining machine drew its own seed: rank 0's counts
        setattr(args, key, value)
    args.rank_devices = [other["device"] for other in everyone]


def reduce(tensor, args):
    """Sum tensor over the run's processes, in place; with one process it is already the sum."""
    if args.world_size > 1:
        dist.all_reduce(tensor)
    return tensor


class AgreedStop:
    """Whether any rank was asked to stop (SIGINT/SIGTERM), decided at the same step on every rank.

    torchrun hands a signal to its workers one after another, and `kill` or a scheduler may
    reach only some of them, so ranks see it at different steps; a rank stopping on its own
    flag would leave the others waiting in the next all_reduce. So each step starts an
    all_reduce(MAX) of the local signal number on the CPU (a gloo group, also beside NCCL)
    without waiting for it, and the next step reads the result: no device synchronisation, no
    wait on the network in practice, and all ranks stop together one step after the signal.
    """

    def __init__(self, args):
        self.world_size = args.world_size
        self.group = None  # the default group when it is gloo already
        if self.world_size > 1 and dist.get_backend() != "gloo":
            self.group = dist.new_group(backend="gloo")
        self.flag = self.work = None

    def poll(self, signum):
        """The agreed signal number (None: go on); call it once per step on every rank."""
        if self.world_size == 1:
            return signum
        agreed = None
        if self.work is not None:
            self.work.wait()
            agreed = int(self.flag.item()) or None
            self.work = None
        if agreed is None:
            self.flag = torch.tensor([signum or 0])
            self.work = dist.all_reduce(self.flag, op=dist.ReduceOp.MAX, group=self.group, async_op=True)
        return agreed

    def close(self):
        """Let the last all_reduce finish (every rank started it) before the group goes away."""
        if self.work is not None:
            self.work.wait()
            self.work = None


def load_checkpoint(args, name=None):
    """(path, checkpoint), the same on every rank: the newest of the run's checkpoints that loads
    (what `con` resumes from), or the one named (epoch_best.pth). Rank 0 picks it, and a rank on a
    machine without the run folder (no shared file system) receives it from rank 0. (None, None)
    on every rank when there is none."""
    from utils.train import checkpoint

    folder = Path(args.run_dir or "") / "checkpoint"

    def pick():
        return checkpoint.load_newest(folder) if name is None else checkpoint.load_named(folder, name)

    if args.world_size == 1:
        return pick()
    path, saved = pick() if args.rank == 0 else (None, None)
    shared = [str(path) if path is not None else None]
    dist.broadcast_object_list(shared, src=0)
    if shared[0] is None:
        return None, None
    path = Path(shared[0])
    found = [None] * args.world_size
    dist.all_gather_object(found, path.exists())
    if not all(found):
        sent = [saved]
        dist.broadcast_object_list(sent, src=0)
        return path, sent[0]
    return path, saved if args.rank == 0 else checkpoint.load(path)


def gather(obj, args):
    """Every rank's obj, in rank order, on rank 0 (None elsewhere); [obj] with one process."""
    if args.world_size == 1:
        return [obj]
    everyone = [None] * args.world_size if args.rank == 0 else None
    dist.gather_object(obj, everyone, dst=0)
    return everyone


def mine(everyone, args):
    """This rank's entry of a list rank 0 saved for every rank (a resumed run's own values and RNG)."""
    return everyone[args.rank] if everyone and len(everyone) == args.world_size else None


def wrap(module, args):
    """The module to train: DistributedDataParallel under torchrun, the module itself with one process."""
    if args.world_size == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[args.device] if args.device.type == "cuda" else None)


def sync_buffers(modules, args):
    """Give every rank rank 0's buffers (BatchNorm statistics) of these modules, before evaluating them.

    Evaluation data is not padded, so ranks may hold different numbers of batches; DDP's forward
    broadcasts the buffers at each call, a collective that would then wait forever. The research
    evaluates the plain modules, and one broadcast here gives them the same numbers.
    """
    if args.world_size == 1:
        return
    for module in modules:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def ready(args):
    """Tell the launcher this process handles SIGINT/SIGTERM itself now (before, it is killed outright)."""
    folder = os.environ.get("EXPER_RANKS_DIR")
    if folder:
        Path(folder, f"ready{args.rank}").touch()


def report(main):
    """Call main(), leave this rank's outcome in $EXPER_RANKS_DIR/rank<k>.json, then leave the group.

    The outcome holds the exit code and, after an exception, the error and when it happened.
    It is written before this rank leaves the process group: the other ranks notice a failed
    peer only when it leaves, so their errors come later, and the earliest error across ranks
    is the cause, the one the launcher records.
    """
    folder = os.environ.get("EXPER_RANKS_DIR")
    rank = int(os.environ.get("RANK", 0))
    outcome = {"rank": rank, "hostname": socket.gethostname(), "pid": os.getpid(), "exit": 1,
               "time": None, "error": None, "traceback": None}
    # under the launcher's torchrun the run's exit code travels in the outcome; torchrun only learns
    # that this rank did not fail (a stop with a checkpoint, a refusal: no failure to report with a banner)
    outcome_says = bool(folder) and int(os.environ.get("WORLD_SIZE", 1)) > 1
    try:
        outcome["exit"] = main()
        return 0 if outcome_says else outcome["exit"]
    except Refused as refused:  # a config value or a checkpoint the run will not use: one line, no traceback
        if int(os.environ.get("LOCAL_RANK", 0)) == 0:  # every rank refuses alike: one says it
            print(f"error: {refused}", file=sys.stderr, flush=True)
        outcome.update(exit=2, time=time.time(), error=str(refused))
        return 0 if outcome_says else 2
    except SystemExit as stop:
        outcome["exit"] = stop.code if isinstance(stop.code, int) else 1
        if outcome["exit"]:
            outcome.update(time=time.time(), error=str(stop.code))
        raise
    except BaseException as error:
        outcome.update(time=time.time(), error=error_text(error),
                       traceback="".join(traceback.format_exception(error)))
        raise
    finally:
        if folder:
            write_json(os.path.join(folder, f"rank{rank}.json"), outcome)
        if dist.is_initialized():
            dist.destroy_process_group()
