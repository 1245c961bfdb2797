"""The tests' research wired to the template: two models, two optimizers, a round-end scheduler.

Usage: run <tag> -f (in a test project); python code/main.py
"""
import math
import sys

import torch

import config
from dataloader import build_loaders
from epoch import evaluate, train_step
from model import Encoder, Head
from utils.train.run import train

DERIVED = {"train/rmse": (math.sqrt, "train/mse"), "val/rmse": (math.sqrt, "val/mse"),
           "test/rmse": (math.sqrt, "test/mse")}


def check(args):
    problems = []
    if not 0 <= args.dropout < 1:
        problems.append(f"dropout must be from 0 up to (not including) 1, not {args.dropout!r}")
    if not isinstance(args.fail_while, str) or args.fail_rank < -1:
        problems.append("fail_while must be a file name (or empty) and fail_rank a rank or -1")
    return problems


def main(run):
    args = run.args
    loaders = build_loaders(args)
    encoder, head = Encoder(args).to(args.device), Head(args).to(args.device)
    optimizers = [torch.optim.SGD(encoder.parameters(), lr=args.lr_encoder, momentum=0.9),
                  torch.optim.Adam(head.parameters(), lr=args.lr_head)]
    schedule = torch.optim.lr_scheduler.StepLR(optimizers[1], 1, gamma=args.decay)
    run.keep(encoder=encoder, head=head, sgd=optimizers[0], adam=optimizers[1], schedule=schedule)
    run.graph(encoder, loaders.example)
    trained_encoder, trained_head = run.parallel(encoder), run.parallel(head)
    for _ in run.rounds():
        trained_encoder.train()
        trained_head.train()
        for x, y in run.batches(loaders.train):
            run.step(train_step(trained_encoder, trained_head, x, y, optimizers, args, run.steps + 1))
        run.evaluated(evaluate(encoder, head, loaders.val, "val"))
        schedule.step()
        if args.images:
            run.image("val/residuals", torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(run.round)))
    if args.test_best:
        run.load_best()
    run.tested(evaluate(encoder, head, loaders.test, "test"))


if __name__ == "__main__":
    sys.exit(train(config, main, check=check, derived=DERIVED))
