"""One training step and the evaluation of the example. Usage: values = train_step(model, x, y, ...)

Plain PyTorch: swap in your own loss and metrics. What the template needs back is named values,
each a number or a 0-dim tensor, alone or as (mean, weight): the step's are read back many
steps later (no .item() here, so the device never waits), an evaluation's are summed over the
processes as mean * weight.
"""
import torch
import torch.nn.functional as F


def train_step(model, inputs, targets, optimizer, scheduler, scaler, args):
    inputs = inputs.to(args.device, non_blocking=True)
    targets = targets.to(args.device, non_blocking=True)
    with torch.autocast(args.device.type, dtype=args.amp_dtype, enabled=args.amp):
        logits = model(inputs)
        loss = F.cross_entropy(logits, targets)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if args.grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    lr = scheduler.get_last_lr()[0]  # the rate this step used
    scheduler.step()
    n = len(targets)
    return {"train/loss": (loss.detach(), n), "train/acc": ((logits.argmax(1) == targets).sum() / n, n),
            "train/lr": lr}


@torch.no_grad()
def evaluate(model, loader, args, split):
    """Loss and accuracy over the loader (this process's share of it: the template sums the processes)."""
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=args.device)
    for inputs, targets in loader:
        inputs = inputs.to(args.device, non_blocking=True)
        targets = targets.to(args.device, non_blocking=True)
        with torch.autocast(args.device.type, dtype=args.amp_dtype, enabled=args.amp):
            logits = model(inputs)
        totals[0] += F.cross_entropy(logits.float(), targets, reduction="sum")
        totals[1] += (logits.argmax(1) == targets).sum()
        totals[2] += len(targets)
    loss, correct, count = totals
    return {f"{split}/loss": (loss / count, count), f"{split}/acc": (correct / count, count)}
