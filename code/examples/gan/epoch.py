"""One GAN training step, the discriminator's evaluation and the samples grid. Usage:

    values = train_step(netG, netD, real, optG, optD, args)   # D's update, then G's

Plain PyTorch, as in DCGAN: the discriminator learns to call real digits real and generated
ones fake, then the generator learns to make it call its digits real. What the template needs
back is named values, each a 0-dim tensor with its weight: read back many steps later (no
.item() here, so the device never waits); an evaluation's are summed over the processes as
mean * weight.
"""
import math

import torch
import torch.nn.functional as F


def _bce(logits, target):
    """The discriminator's loss against one label for the whole batch (sigmoid inside: stable)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def train_step(netG, netD, real, optG, optD, args):
    real = real.to(args.device, non_blocking=True)
    n = len(real)
    noise = torch.randn(n, args.latent, device=args.device)  # the global RNG: a checkpoint holds it, per rank

    # the discriminator: real digits towards real_label, generated ones towards 0. Under
    # DistributedDataParallel each forward of a module is followed by its backward before the
    # next forward of that module, so the two halves have a backward each (their gradients add up)
    optD.zero_grad(set_to_none=True)
    out_real = netD(real)
    loss_real = _bce(out_real, args.real_label)
    loss_real.backward()
    fake = netG(noise)
    out_fake = netD(fake.detach())  # detached: this half trains D only, G's graph waits for its own step
    loss_fake = _bce(out_fake, 0.0)
    loss_fake.backward()
    optD.step()

    # the generator: make the updated discriminator call its digits real (D's gradients this
    # backward leaves behind are cleared by the next step's zero_grad)
    optG.zero_grad(set_to_none=True)
    out_g = netD(fake)
    loss_g = _bce(out_g, 1.0)
    loss_g.backward()
    optG.step()

    return {"train/loss_d": ((loss_real + loss_fake).detach(), n), "train/loss_g": (loss_g.detach(), n),
            "train/d_x": (torch.sigmoid(out_real.detach()).mean(), n),  # D(x): towards 1 while D wins
            "train/d_g_z": (torch.sigmoid(out_fake.detach()).mean(), n),  # D(G(z)) before D's update ...
            "train/d_g_z2": (torch.sigmoid(out_g.detach()).mean(), n)}  # ... and after it, as G trains on it


@torch.no_grad()
def evaluate(netD, loader, args, split):
    """D(x) over held-out real digits (this process's share: the template sums the processes). Near
    train/d_x, the discriminator has not memorised the training digits."""
    netD.eval()
    totals = torch.zeros(2, dtype=torch.float64, device=args.device)
    for (real,) in loader:
        totals[0] += torch.sigmoid(netD(real.to(args.device, non_blocking=True))).sum()
        totals[1] += len(real)
    believed, count = totals
    return {f"{split}/d_x": (believed / count, count)}


@torch.no_grad()
def generate(netG, noise):
    """Digits from fixed noise, in eval mode: BatchNorm uses its running statistics and keeps them."""
    netG.eval()
    return netG(noise)


@torch.no_grad()
def judged(netD, fakes, split):
    """D(G(z)) over generated digits (this process's share of them)."""
    netD.eval()
    return {f"{split}/d_g_z": (torch.sigmoid(netD(fakes)).mean(), len(fakes))}


def grid(images, pad=1, scale=4):
    """One (C, H, W) picture in [0, 1] of images (N, C, h, w) in [-1, 1]: rows of sqrt(N), a gray
    line between them, every pixel drawn as scale x scale so TensorBoard shows 8x8 digits large."""
    n, c, h, w = images.shape
    side = math.ceil(math.sqrt(n))
    rows = math.ceil(n / side)
    out = torch.full((c, rows * (h + pad) + pad, side * (w + pad) + pad), 0.5, device=images.device)
    for i, image in enumerate(((images + 1) / 2).clamp(0, 1)):
        top, left = pad + (i // side) * (h + pad), pad + (i % side) * (w + pad)
        out[:, top:top + h, left:left + w] = image
    return out.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
