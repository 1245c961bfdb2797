"""The example's data: scikit-learn's digits as tensors, split by a fixed rule, in resumable order.

Usage: loaders = build_loaders(args); for x, y in run.batches(loaders.train): ...

Swap this file for your own data: main.py hands the training loader to run.batches(), which
calls set_epoch(epoch) on its sampler when it has one, and on `con` opens the epoch again from
the same random state and skips what was trained. Any loader resumes exactly that way; this
one draws its order from (seed, epoch) alone and splits it across processes.
"""
import io
import logging
import math
import os
from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from utils.atomic import write_bytes

log = logging.getLogger(__name__)


def prepare_digits(data_dir):
    """Write __data__/digits.pt once (float images in [0, 1], int64 labels); later runs just load it."""
    path = os.path.join(data_dir, "digits.pt")
    if not os.path.exists(path):
        from sklearn.datasets import load_digits  # installed with the package: no download

        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.tensor(digits.target, dtype=torch.int64)
        os.makedirs(data_dir, exist_ok=True)
        buffer = io.BytesIO()
        torch.save({"images": images, "labels": labels}, buffer)
        write_bytes(path, buffer.getvalue())  # atomic: two first runs at once both succeed
        log.info("prepared %s (%d images)", path, len(labels))
    return torch.load(path)


def split_indices(n, val_fraction, test_fraction):
    """A fixed rule, the same on every machine: index % 10 picks the split (8: val, 9: test)."""
    val_slots = round(val_fraction * 10)
    test_slots = round(test_fraction * 10)
    slot = torch.arange(n) % 10
    test = slot >= 10 - test_slots
    val = (slot >= 10 - test_slots - val_slots) & ~test
    train = ~(val | test)
    return train.nonzero().squeeze(1), val.nonzero().squeeze(1), test.nonzero().squeeze(1)


class TensorBatches(Dataset):
    """Indexed with a whole batch of indices at once: one tensor gather per batch, no collation."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, indices):
        return self.images[indices], self.labels[indices]


class EpochSampler(Sampler):
    """Batches of indices in an order fixed by (seed, epoch), split across processes.

    Like DistributedSampler with shuffle and drop_last=False: training pads to equal shares, so
    every process takes the same number of steps (under torchrun they must).
    """

    def __init__(self, indices, batch_size, seed, shuffle=True, rank=0, world_size=1):
        self.indices, self.batch_size, self.seed, self.shuffle = indices, batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        # training pads to equal shares (every rank takes the same number of steps);
        # evaluation does not, so each sample is counted once across ranks
        self.per_rank = math.ceil((len(indices) - (0 if shuffle else rank)) / world_size)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return math.ceil(self.per_rank / self.batch_size)

    def __iter__(self):
        order = self.indices
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
            order = order[torch.randperm(len(order), generator=generator)]
        if self.shuffle:
            order = torch.cat([order, order[: self.per_rank * self.world_size - len(order)]])
        mine = order[self.rank :: self.world_size]
        for start in range(0, len(mine), self.batch_size):
            yield mine[start : start + self.batch_size]


def build_loaders(args):
    data = prepare_digits(args.data_dir)
    dataset = TensorBatches(data["images"], data["labels"])
    train, val, test = split_indices(len(dataset), args.val_fraction, args.test_fraction)
    sampler = EpochSampler(train, args.batch_size, args.seed, True, args.rank, args.world_size)

    def loader(batch_sampler):
        # batch_size=None: the sampler already yields whole batches of indices. A generator of
        # its own keeps the loader from drawing on the global RNG (which a resume restores)
        return DataLoader(dataset, sampler=batch_sampler, batch_size=None, num_workers=args.num_workers,
                          generator=torch.Generator().manual_seed(args.seed),
                          pin_memory=args.device.type == "cuda", persistent_workers=args.num_workers > 0)

    def eval_loader(indices):
        return loader(EpochSampler(indices, args.eval_batch_size, 0, False, args.rank, args.world_size))

    log.info("digits: %d train / %d val / %d test images", len(train), len(val), len(test))
    return SimpleNamespace(train=loader(sampler), val=eval_loader(val), test=eval_loader(test),
                           example=data["images"][val[:1]])  # one input for the graph, taken without an iterator
