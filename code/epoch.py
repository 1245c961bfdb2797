"""One epoch of training, and evaluation. Usage: train_epoch(model, loader, ..., after_step)

Plain PyTorch: swap in your own loss and metrics. The template's only hook is after_step(loss,
correct, count), which records without forcing the device to synchronise (no .item() here).
"""
import torch
import torch.nn.functional as F


def train_epoch(model, loader, optimizer, scheduler, scaler, args, after_step):
    model.train()
    for inputs, targets in loader:
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
        scheduler.step()
        after_step(loss.detach(), (logits.argmax(1) == targets).sum(), len(targets))


@torch.no_grad()
def evaluate(model, loader, args):
    """Summed loss, correct and count over the loader (the caller reduces across processes)."""
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
    return totals
