"""The training step and the evaluation. Usage: values = train_step(encoder, head, x, y, optimizers, args, step)"""
import os
import time

import torch
import torch.nn.functional as F


def train_step(encoder, head, x, y, optimizers, args, step):
    if args.pause:
        time.sleep(args.pause)
    if step == args.fail_at_step and args.fail_rank in (-1, args.rank) and (
            not args.fail_while or os.path.exists(os.path.join(args.data_dir, args.fail_while))):
        raise RuntimeError(f"boom at step {step}")
    if args.uneven_draws:
        torch.rand(1 + 7 * args.rank)
    prediction = head(encoder(x))
    loss = F.mse_loss(prediction, y)
    if args.nan_at_step and step >= args.nan_at_step:
        loss = loss * float("nan")
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for optimizer in optimizers:
        optimizer.step()
    n = len(y)
    return {"train/mse": (loss.detach(), n), "train/mae": ((prediction - y).abs().mean().detach(), n),
            "train/lr_head": optimizers[1].param_groups[0]["lr"]}


@torch.no_grad()
def evaluate(encoder, head, loader, split):
    encoder.eval()
    head.eval()
    sums = torch.zeros(3, dtype=torch.float64)
    for x, y in loader:
        prediction = head(encoder(x))
        sums += torch.stack([F.mse_loss(prediction, y, reduction="sum"), (prediction - y).abs().sum(),
                             torch.tensor(float(len(y)))]).double()
    mse, mae, n = sums
    return {f"{split}/mse": (mse / n, n), f"{split}/mae": (mae / n, n)}
