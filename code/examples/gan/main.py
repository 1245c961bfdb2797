"""Train the GAN recipe and record everything. Usage: `run <tag> [-f]`, or `python code/main.py` to debug.

This file is yours: it builds a generator and a discriminator with an Adam optimizer each, and
hands all four to run.keep by name, so a checkpoint holds them and `con` restores them. Each
step trains the discriminator, then the generator (epoch.py), and reports five named values.
Each round's end puts a grid of digits drawn from fixed noise in TensorBoard (run.image) and
asks the discriminator about held-out real digits and those samples (run.evaluated). A GAN
has no natural best checkpoint: config.py's best_metric is None.
"""
import sys

import torch

import config
from dataloader import build_loaders
from epoch import evaluate, generate, grid, judged, train_step
from model import Discriminator, Generator
from utils.train.run import train

DERIVED = {}  # values computed from the means, e.g. {"train/d_gap": (operator.sub, "train/d_x", "train/d_g_z")}


def check(args):
    """The recipe's own config values, as sentences (the template checks the keys it reads itself)."""
    problems = []
    for name in ("latent", "gen_channels", "disc_channels", "batch_size", "eval_batch_size", "samples"):
        value = getattr(args, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{name} must be a whole number >= 1, not {value!r}")
    for name in ("lr_g", "lr_d"):
        value = getattr(args, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            problems.append(f"{name} must be a number > 0, not {value!r}")
    betas = args.betas
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
        problems.append(f"betas must be two numbers from 0 up to (not including) 1, not {betas!r}")
    if not isinstance(args.sample_seed, int) or isinstance(args.sample_seed, bool) or args.sample_seed < 0:
        problems.append(f"sample_seed must be a whole number >= 0, not {args.sample_seed!r}")
    if not (isinstance(args.real_label, (int, float)) and 0 < args.real_label <= 1):
        problems.append(f"real_label must be a number above 0 and at most 1, not {args.real_label!r}")
    if not 0 <= args.val_fraction * 10 + args.test_fraction * 10 < 10:
        problems.append("val_fraction + test_fraction must be below 1 (in tenths)")
    return problems


def main(run):
    args = run.args
    loaders = build_loaders(args)
    netG, netD = Generator(args).to(args.device), Discriminator(args).to(args.device)
    optG = torch.optim.Adam(netG.parameters(), lr=args.lr_g, betas=tuple(args.betas))
    optD = torch.optim.Adam(netD.parameters(), lr=args.lr_d, betas=tuple(args.betas))
    run.keep(netG=netG, netD=netD, optG=optG, optD=optD)  # on `con`: restored here
    # the grid's noise, from a generator of its own: drawing it never touches the training's random streams
    fixed = torch.Generator().manual_seed(args.sample_seed)
    fixed_noise = torch.randn(args.samples, args.latent, generator=fixed).to(args.device)
    run.graph(netG, fixed_noise[:1])
    trainedG, trainedD = run.parallel(netG), run.parallel(netD)  # DistributedDataParallel under torchrun
    if args.rank:  # every rank starts from the run's seed: without this each would draw the same noise
        torch.manual_seed(args.seed + args.rank)  # (`con` sets every rank's generators back where they were)

    for _ in run.rounds():  # an epoch each, from where a resumed run stopped
        trainedG.train()
        trainedD.train()
        for (real,) in run.batches(loaders.train):
            run.step(train_step(trainedG, trainedD, real, optG, optD, args))
        fakes = generate(netG, fixed_noise)  # the plain modules: no collective, BatchNorm in eval mode
        run.image("samples", grid(fakes))
        mine = fakes[args.rank::args.world_size]  # each process judges its share, summed by the template
        run.evaluated({**evaluate(netD, loaders.val, args, "val"), **judged(netD, mine, "val")})
    run.tested(evaluate(netD, loaders.test, args, "test"))


if __name__ == "__main__":
    sys.exit(train(config, main, check=check, derived=DERIVED))
