"""The lm recipe's data: English text already on the machine, as word ids in bptt-length chunks.

Usage: loaders = build_loaders(args); for inputs, targets in run.batches(loaders.train): ...

The text is scikit-learn's dataset descriptions (the .rst files of sklearn/datasets/descr/),
installed with the package: nothing is downloaded (another scikit-learn release may word them
otherwise: the log names the release). Their non-blank lines are split by a fixed rule
(index % 10), lowercased and cut into words and runs of punctuation by a regex, each line
ending in <eos>. The vocabulary comes from the training lines alone. As in word_language_model,
each split is laid out as a (tokens, batch) grid and cut into chunks of bptt rows; a chunk's
targets are its inputs one token later. Training takes the chunks in a shuffled order that a
DistributedSampler draws from (seed, epoch) alone, padded so every process takes the same
number of steps; evaluation gives each process its share of the chunks, each counted once.
"""
import importlib.metadata
import importlib.util
import logging
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

log = logging.getLogger(__name__)

UNK, EOS = "<unk>", "<eos>"
WORDS = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]+")  # words (with "it's"), or a run of punctuation


def descriptions():
    """The .rst files of sklearn/datasets/descr/, found without importing scikit-learn (that takes seconds)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise RuntimeError("the lm recipe reads scikit-learn's dataset descriptions: pip install scikit-learn")
    folder = Path(spec.origin).parent / "datasets" / "descr"
    files = sorted(folder.glob("*.rst"))
    if not files:
        raise RuntimeError(f"no dataset descriptions (*.rst) in {folder}")
    return files


def read_lines():
    """The non-blank lines of scikit-learn's dataset descriptions, in file-name order, as lists of words."""
    lines = [line for f in descriptions() for line in f.read_text(encoding="utf-8").splitlines()]
    return [WORDS.findall(line.lower()) for line in lines if line.strip()]


def split_lines(lines, val_fraction, test_fraction):
    """A fixed rule, the same on every machine: line index % 10 picks the split (8: val, 9: test)."""
    val_slots, test_slots = round(val_fraction * 10), round(test_fraction * 10)
    splits = ([], [], [])
    for i, line in enumerate(lines):
        slot = i % 10
        splits[2 if slot >= 10 - test_slots else 1 if slot >= 10 - test_slots - val_slots else 0].append(line)
    return splits


def build_vocab(lines, min_count):
    """<unk>, <eos>, then the training words seen min_count times or more, the most frequent first."""
    counts = Counter(word for line in lines for word in line)
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return [UNK, EOS, *kept]


def encode(lines, index):
    ids = [index.get(word, 0) for line in lines for word in (*line, EOS)]  # 0: <unk>
    return torch.tensor(ids, dtype=torch.int64)


def batchify(ids, columns):
    """The token stream as a (tokens, columns) grid, each column a contiguous stretch (the rest dropped)."""
    rows = len(ids) // columns
    return ids[: rows * columns].view(columns, rows).t().contiguous()


class Chunks(Dataset):
    """Chunk i of a grid: rows [i * bptt, i * bptt + bptt) as inputs and the same rows one later as targets."""

    def __init__(self, grid, bptt):
        self.grid, self.bptt = grid, bptt
        self.starts = range(0, len(grid) - 1, bptt)  # the last chunk may be shorter

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        start = self.starts[i]
        n = min(self.bptt, len(self.grid) - 1 - start)
        return self.grid[start : start + n], self.grid[start + 1 : start + 1 + n]


def build_loaders(args):
    train_lines, val_lines, test_lines = split_lines(read_lines(), args.val_fraction, args.test_fraction)
    vocab = build_vocab(train_lines, args.min_count)
    index = {word: i for i, word in enumerate(vocab)}
    train, val, test = (encode(lines, index) for lines in (train_lines, val_lines, test_lines))
    chunks = Chunks(batchify(train, args.batch_size), args.bptt)
    # one process or many, the order comes from (seed, epoch) alone (run.batches() calls set_epoch);
    # with drop_last=False the sampler pads every process's share to the same number of steps
    sampler = DistributedSampler(chunks, num_replicas=args.world_size, rank=args.rank, shuffle=True, seed=args.seed)
    train_loader = DataLoader(chunks, batch_size=None, sampler=sampler)  # a chunk is a batch: no collation

    def evaluation(ids):  # this process's chunks, every chunk on exactly one process
        grid = Chunks(batchify(ids, args.eval_batch_size), args.bptt)
        return [grid[i] for i in range(args.rank, len(grid), args.world_size)]

    unknown = [(ids == 0).float().mean().item() for ids in (train, val, test)]
    log.info("%s (scikit-learn %s): %d words in the vocabulary; %d train / %d val / %d test tokens "
             "(%.0f%% / %.0f%% / %.0f%% <unk>); %d training chunks of %d x %d", args.corpus,
             importlib.metadata.version("scikit-learn"), len(vocab), len(train), len(val), len(test),
             *(100 * u for u in unknown), len(chunks), args.bptt, args.batch_size)
    return SimpleNamespace(train=train_loader, val=evaluation(val), test=evaluation(test), vocab=vocab,
                           example=chunks[0][0][:, :1])  # one column for the graph, taken without an iterator
