"""One training step and the evaluation of the lm recipe. Usage: values = train_step(model, x, y, optimizer, args)

The loss is the cross-entropy per token, weighted by the token count: a chunk's mean counts as
many times as it has tokens, so a shorter last chunk and the processes' shares add up to the
per-token mean of the whole split. Perplexity is not computed here: main.py derives it from the
means (exp of a mean loss, not a mean of exps). The step's values stay on the device (no .item()).
"""
import torch
import torch.nn.functional as F


def per_token_loss(logits, targets, reduction="mean"):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction=reduction)


def train_step(model, inputs, targets, optimizer, args):
    inputs = inputs.to(args.device, non_blocking=True)
    targets = targets.to(args.device, non_blocking=True)
    loss = per_token_loss(model(inputs), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if args.grad_clip:  # recurrent networks' gradients explode now and then: clipping keeps a high rate safe
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
    lr = optimizer.param_groups[0]["lr"]  # the rate this step used (the plateau scheduler changes it)
    optimizer.step()
    return {"train/loss": (loss.detach(), targets.numel()), "train/lr": lr}


@torch.no_grad()
def evaluate(model, chunks, args, split):
    """The per-token loss over this process's chunks (the template sums the processes' shares)."""
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64, device=args.device)
    for inputs, targets in chunks:
        inputs = inputs.to(args.device, non_blocking=True)
        targets = targets.to(args.device, non_blocking=True)
        totals[0] += per_token_loss(model(inputs).float(), targets, reduction="sum")
        totals[1] += targets.numel()
    loss, count = totals
    return {f"{split}/loss": (loss / count if count else loss, count)}  # no chunks here: weight 0, no value
