"""The recipe's two models, DCGAN-like, for 8x8 digits. Usage: netG, netD = Generator(args), Discriminator(args)

The generator maps noise (N, latent) to images (N, 1, 8, 8) in [-1, 1]; the discriminator maps
images to one logit each (N,): real digits high, generated ones low. As in DCGAN: strided
(transposed) convolutions instead of pooling, BatchNorm but not on the discriminator's input nor
the generator's output, ReLU in the generator, LeakyReLU in the discriminator, N(0, 0.02) weights.
"""
from torch import nn


def dcgan_init(module):
    """DCGAN's initial weights: convolutions N(0, 0.02), BatchNorm scales N(1, 0.02), shifts 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    def __init__(self, args, channels=1):
        super().__init__()
        c = args.gen_channels
        self.net = nn.Sequential(
            nn.ConvTranspose2d(args.latent, 2 * c, 2, 1, 0, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU(),  # 2x2
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),  # 4x4
            nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh(),  # 8x8, in [-1, 1] like the data
        )
        self.apply(dcgan_init)

    def forward(self, z):
        return self.net(z[:, :, None, None])  # (N, latent) as 1x1 maps


class Discriminator(nn.Module):
    def __init__(self, args, channels=1):
        super().__init__()
        c = args.disc_channels
        self.net = nn.Sequential(
            nn.Conv2d(channels, c, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),  # 4x4
            nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2),  # 2x2
            nn.Conv2d(2 * c, 1, 2, 1, 0, bias=False),  # 1x1: one logit (the loss applies the sigmoid)
        )
        self.apply(dcgan_init)

    def forward(self, x):
        return self.net(x).view(-1)
