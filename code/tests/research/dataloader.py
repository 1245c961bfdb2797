"""Synthetic regression data, and loaders as a researcher would write them. Usage: loaders = build_loaders(args)

The training loader is a plain DataLoader(shuffle=True) with no generator of its own: its order
is drawn from the global torch RNG when each epoch's iterator is made, the case the template
must resume exactly. Under torchrun a DistributedSampler splits it.
"""
from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset, TensorDataset


def points(args):
    g = torch.Generator().manual_seed(1234)  # the same data on every machine and in every run
    x = torch.randn(args.samples, args.features, generator=g)
    w = torch.randn(args.features, 1, generator=g)
    y = torch.sin(x @ w) + 0.1 * torch.randn(args.samples, 1, generator=g)
    return TensorDataset(x, y)


def build_loaders(args):
    data = points(args)
    n = len(data)
    train, val, test = range(0, n * 3 // 4), range(n * 3 // 4, n * 7 // 8), range(n * 7 // 8, n)
    train_set = Subset(data, list(train))
    if args.world_size > 1:
        sampler = DistributedSampler(train_set, args.world_size, args.rank, shuffle=True, seed=args.seed)
        train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler)
    else:
        train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                                  persistent_workers=args.persistent)

    def evaluation(indices):  # each process its share, no padding: every point counted once
        return DataLoader(Subset(data, list(indices)[args.rank::args.world_size]), batch_size=args.eval_batch_size)

    return SimpleNamespace(train=train_loader, val=evaluation(val), test=evaluation(test), example=data[0][0][None])
