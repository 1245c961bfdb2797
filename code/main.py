"""Train the example and record everything. Usage: `run <tag> [-f]`, or `python code/main.py` to debug.

A plain `python code/main.py` trains into __result__/_scratch/<id>/ (never listed). Under
`run`/`con`/`rerun` the run's identity comes in EXPER_* variables, and under torchrun each
process gets its rank; only rank 0 writes. Read top to bottom: build, resume, loop, record.
"""
import logging
import math
import signal
import sys

import torch
from torch.nn.parallel import DistributedDataParallel

import config
import state
from args_process import process
from dataloader import build_loaders
from epoch import evaluate, train_epoch
from model import Net
from utils import distributed
from utils.recorder import Recorder, Stop, setup_logging
from utils.statistic.run_record import hyperparameters

log = logging.getLogger("main")


def seed_everything(seed, deterministic):
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False


def build_optimizer(model, args):
    if args.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=args.lr, **args.optim)
    return torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.optim.get("weight_decay", 0.01))


def build_scheduler(optimizer, args, steps_per_epoch):
    """Linear warm-up from lr/10, then cosine decay to 0; stepped after every batch."""
    warmup, total = args.warmup_epochs * steps_per_epoch, args.epochs * steps_per_epoch

    def factor(step):
        if step < warmup:
            return 0.1 + 0.9 * step / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def evaluate_split(model, loader, args, name):
    totals = evaluate(distributed.for_evaluation(model, args), loader, args)
    loss, correct, count = distributed.reduce(totals, args).tolist()
    return {f"{name}/loss": loss / count, f"{name}/acc": correct / count}


def better(value, best, mode):
    return best is None or (value > best if mode == "max" else value < best)


def load_resume_point(args, hparams):
    """The run's newest checkpoint that loads, checked before anything is written: a checkpoint
    of another commit, config or process count would not continue this run exactly."""
    path, saved = distributed.load_newest(args)  # rank 0 picks it for all ranks
    if saved is None:
        raise SystemExit(f"error: {args.tag}/{args.id} has no checkpoint that loads; `rerun {args.tag}` starts afresh")
    problem = state.mismatch(saved, hparams, args.commit, args.world_size)
    if problem:
        raise SystemExit(f"error: {path.name} is not {args.tag}/{args.id}'s own: {problem}; nothing was changed")
    log.info("resuming from %s", path.name)
    return saved


def main():
    args = process(config)
    distributed.setup(args, hyperparameters(config))  # under torchrun: the group, and rank 0's identity and seed
    setup_logging(args)
    hparams = hyperparameters(config)
    saved = load_resume_point(args, hparams) if args.resume else None
    seed_everything(args.seed, args.deterministic)

    loaders = build_loaders(args)
    model = Net(args).to(args.device)
    optimizer = build_optimizer(model, args)
    scheduler = build_scheduler(optimizer, args, len(loaders.sampler))
    scaler = torch.amp.GradScaler(args.device.type, enabled=args.amp and args.amp_dtype == torch.float16)
    progress = {"epoch": 0, "batch": 0, "step": 0, "best": None}
    rec = Recorder(args, hparams)  # from here on, Ctrl-C stops at a step boundary with a checkpoint

    if saved is not None:
        progress, saved = state.restore(saved, model, optimizer, scheduler, scaler)
        distributed.restore_rank_rng(saved, args)
    example = next(iter(loaders.val))[0][:1].to(args.device)
    rec.start(progress, saved, state.unwrap(model), example)
    log.info("run %s/%s: seed %d, %d train / %d val / %d test images, %d steps per epoch, device %s",
             args.tag, args.id, args.seed, *loaders.sizes.values(), len(loaders.sampler), args.device)
    if args.world_size > 1:
        model = DistributedDataParallel(model)
    if args.torch_compile:
        model = torch.compile(model)

    def snapshot(extra, into):  # called by rec.checkpoint once the previous save is written
        return state.snapshot(model, optimizer, scheduler, scaler, progress, extra, into)

    def after_step(loss, correct, count):
        progress["batch"] += 1
        progress["step"] += 1
        rec.step(loss, correct, count, scheduler.get_last_lr()[0], progress)
        if args.checkpoint_every_steps and progress["step"] % args.checkpoint_every_steps == 0:
            rec.checkpoint(snapshot, f"step_{progress['step']}.pth")

    try:
        for epoch in range(progress["epoch"], args.epochs):
            loaders.sampler.set_epoch(epoch, progress["batch"])
            train_epoch(model, rec.progress_bar(loaders.train, epoch), optimizer, scheduler, scaler, args, after_step)
            metrics = {"epoch": epoch + 1, "step": progress["step"], **rec.epoch_train_metrics(progress),
                       **evaluate_split(model, loaders.val, args, "val")}
            if not args.log_every_steps:
                metrics["lr"] = scheduler.get_last_lr()[0]
            is_best = better(metrics[args.best_metric], progress["best"], args.best_mode)
            if is_best:
                progress["best"] = metrics[args.best_metric]
            metrics[f"{args.best_metric}_best"] = progress["best"]
            progress.update(epoch=epoch + 1, batch=0)
            log.info("epoch %d/%d  %s", epoch + 1, args.epochs,
                     "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k not in ("epoch", "step")))
            rec.epoch_end(metrics)
            rec.checkpoint(snapshot, f"epoch_{epoch + 1}.pth", best=is_best)
        final = evaluate_split(model, loaders.test, args, "test")
        log.info("test  %s", "  ".join(f"{k} {v:.4f}" for k, v in final.items()))
        sha = state.weights_sha256(model)
        rec.finish(final, sha)
        log.info("finished: weights_sha256 %s", sha)
        return 0
    except Stop as stop:
        rec.checkpoint(snapshot, f"step_{progress['step']}.pth")
        rec.interrupted(stop.signum)
        return 128 + stop.signum
    except BaseException as error:
        rec.crashed(error)
        if isinstance(error, KeyboardInterrupt):
            return 128 + signal.SIGINT
        raise


if __name__ == "__main__":
    sys.exit(distributed.report(main))  # also leaves the process group, after saying how this rank ended
