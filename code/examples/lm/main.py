"""Train the lm recipe's word language model and record everything. Usage: `run <tag> [-f]`, `python code/main.py`.

A small LSTM (or GRU) language model, as pytorch/examples' word_language_model, trained by
steps: a round is eval_every_steps steps (config.py), ending in an evaluation, a metrics.csv
row and a checkpoint, and a ReduceLROnPlateau step on the validation loss. Perplexities are
derived values (DERIVED): the template computes exp(mean loss) at every row, so train/ppl_step,
val/ppl and test/ppl need no code here. The scheduler is kept with the model and optimizer,
so `con` continues with the rate, the best loss and the patience count it stopped with.
"""
import math
import sys

import torch

import config
from dataloader import build_loaders
from epoch import evaluate, train_step
from model import RNNModel
from utils.train.run import train

DERIVED = {"train/ppl": (math.exp, "train/loss"), "val/ppl": (math.exp, "val/loss"),
           "test/ppl": (math.exp, "test/loss")}  # perplexity: exp of the per-token mean loss


def _whole(value, low):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check(args):
    """The recipe's own config values, as sentences (the template checks the keys it reads itself)."""
    problems = []
    if args.corpus != "sklearn-descr":
        problems.append(f"corpus must be 'sklearn-descr' (the only text dataloader.py reads), not {args.corpus!r}")
    if args.rnn not in ("LSTM", "GRU"):
        problems.append(f"rnn must be 'LSTM' or 'GRU', not {args.rnn!r}")
    for name in ("min_count", "batch_size", "bptt", "eval_batch_size", "emsize", "nhid", "nlayers"):
        if not _whole(getattr(args, name), 1):
            problems.append(f"{name} must be a whole number >= 1, not {getattr(args, name)!r}")
    for name in ("lr_patience", "threads"):
        if not _whole(getattr(args, name), 0):
            problems.append(f"{name} must be a whole number >= 0, not {getattr(args, name)!r}")
    if args.tied and args.emsize != args.nhid:
        problems.append(f"tied needs emsize == nhid (the decoder reuses the embedding), not {args.emsize} and "
                        f"{args.nhid}")
    if not (_number(args.dropout) and 0 <= args.dropout < 1):
        problems.append(f"dropout must be a number from 0 up to (not including) 1, not {args.dropout!r}")
    for name in ("lr", "grad_clip", "lr_threshold"):
        if not (_number(getattr(args, name)) and getattr(args, name) >= 0):
            problems.append(f"{name} must be a number >= 0, not {getattr(args, name)!r}")
    if not (_number(args.lr_factor) and 0 < args.lr_factor < 1):
        problems.append(f"lr_factor must be a number between 0 and 1, not {args.lr_factor!r}")
    if not 0 <= args.val_fraction * 10 + args.test_fraction * 10 < 10:
        problems.append("val_fraction + test_fraction must be below 1 (in tenths)")
    return problems


def main(run):
    args = run.args
    if args.threads:  # before anything runs, so the session records it (CPU results may depend on it)
        torch.set_num_threads(args.threads)
    loaders = build_loaders(args)
    model = RNNModel(args, len(loaders.vocab)).to(args.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    # word_language_model divides the rate by 4 whenever the validation loss did not improve
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=args.lr_factor,
                                                         patience=args.lr_patience, threshold=args.lr_threshold)
    run.keep(model=model, optimizer=optimizer, plateau=plateau)  # on `con`: all three restored here
    run.graph(model, loaders.example.to(args.device))
    trained = run.parallel(model)  # DistributedDataParallel under torchrun

    for _ in run.rounds():  # eval_every_steps steps each, from where a resumed run stopped
        trained.train()
        for inputs, targets in run.batches(loaders.train):
            run.step(train_step(trained, inputs, targets, optimizer, args))
        val = run.evaluated(evaluate(model, loaders.val, args, "val"))
        # the loss summed over every process: each rank's scheduler takes the same step
        plateau.step(val["val/loss"])
    run.tested(evaluate(model, loaders.test, args, "test"))


if __name__ == "__main__":
    sys.exit(train(config, main, check=check, derived=DERIVED))
