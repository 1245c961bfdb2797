"""The recipe's data: scikit-learn's digits as images in [-1, 1], split by a fixed rule. Usage:

    loaders = build_loaders(args); for (real,) in run.batches(loaders.train): ...

A GAN needs only the images: the labels are dropped. The training loader is a plain DataLoader
over a DistributedSampler (one process: world size 1), which draws its order from (seed, epoch)
alone; run.batches() calls its set_epoch(epoch), and on `con` opens the epoch again and skips
what was trained. Under torchrun it pads to equal shares, so every rank takes the same steps.
"""
import io
import logging
import os
from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

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


def build_loaders(args):
    images = prepare_digits(args.data_dir)["images"] * 2 - 1  # [0, 1] -> [-1, 1], the generator's tanh range
    train, val, test = split_indices(len(images), args.val_fraction, args.test_fraction)
    train_set = TensorDataset(images[train])
    sampler = DistributedSampler(train_set, args.world_size, args.rank, shuffle=True, seed=args.seed)
    # drop_last: every step sees a full batch of real digits against as many generated ones. A
    # generator of its own keeps the loader from drawing on the global RNG, which the noise comes from
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                              num_workers=args.num_workers, generator=torch.Generator().manual_seed(args.seed),
                              pin_memory=args.device.type == "cuda", persistent_workers=args.num_workers > 0)

    def evaluation(indices):  # each process its share, no padding: every digit counted once
        return DataLoader(TensorDataset(images[indices[args.rank::args.world_size]]),
                          batch_size=args.eval_batch_size)

    log.info("digits: %d train / %d val / %d test images", len(train), len(val), len(test))
    return SimpleNamespace(train=train_loader, val=evaluation(val), test=evaluation(test))
