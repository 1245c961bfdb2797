"""Train the example and record everything. Usage: `run <tag> [-f]`, or `python code/main.py` to debug.

This file is yours: it builds what the research needs, hands the template the objects a
checkpoint must hold (run.keep), and runs the loop, reporting named values (run.step,
run.evaluated, run.tested). The template records every name it is given, checkpoints and
resumes every object, and stops, resumes and distributes the loop (utils/train/run.py tells
what each call does). A plain `python code/main.py` trains into __result__/_scratch/<id>/.
"""
import math
import sys

import torch

import config
from dataloader import build_loaders
from epoch import evaluate, train_step
from model import Net
from utils.train.run import train

DERIVED = {}  # values computed from the means, e.g. {"val/ppl": (math.exp, "val/loss")}


def check(args):
    """The example's own config values, as sentences (the template checks the keys it reads itself)."""
    problems = []
    if args.dataset != "digits":
        problems.append(f"dataset must be 'digits' (the one dataloader.py prepares), not {args.dataset!r}")
    if args.optimizer not in ("sgd", "adamw"):
        problems.append(f"optimizer must be 'sgd' or 'adamw', not {args.optimizer!r}")
    if not (isinstance(args.dropout, (int, float)) and 0 <= args.dropout < 1):
        problems.append(f"dropout must be a number from 0 up to (not including) 1, not {args.dropout!r}")
    for name in ("lr", "warmup_epochs", "grad_clip"):
        value = getattr(args, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            problems.append(f"{name} must be a number >= 0, not {value!r}")
    if not 0 <= args.val_fraction * 10 + args.test_fraction * 10 < 10:
        problems.append("val_fraction + test_fraction must be below 1 (in tenths)")
    return problems


def build_optimizer(model, args):
    if args.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=args.lr, **args.optim)
    return torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.optim.get("weight_decay", 0.01))


def warmup_cosine(optimizer, warmup, total):
    """Linear warm-up from lr/10 over `warmup` steps, then cosine decay to 0 at `total`; stepped every batch."""
    def factor(step):
        if step < warmup:
            return 0.1 + 0.9 * step / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def main(run):
    args = run.args
    # bfloat16 where the device has it, else float16 with a gradient scaler
    args.amp_dtype = torch.bfloat16 if args.device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    loaders = build_loaders(args)
    model = Net(args).to(args.device)
    optimizer = build_optimizer(model, args)
    steps_per_epoch = len(loaders.train)
    scheduler = warmup_cosine(optimizer, args.warmup_epochs * steps_per_epoch, args.epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler(args.device.type, enabled=args.amp and args.amp_dtype == torch.float16)
    run.keep(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)  # on `con`: restored here
    run.graph(model, loaders.example.to(args.device))
    trained = run.parallel(model)  # DistributedDataParallel under torchrun
    if args.torch_compile:
        trained = torch.compile(trained)

    for _ in run.rounds():  # an epoch each, from where a resumed run stopped
        trained.train()
        for inputs, targets in run.batches(loaders.train):
            run.step(train_step(trained, inputs, targets, optimizer, scheduler, scaler, args))
        run.evaluated(evaluate(model, loaders.val, args, "val"))
    run.tested(evaluate(model, loaders.test, args, "test"))


if __name__ == "__main__":
    sys.exit(train(config, main, check=check, derived=DERIVED))
