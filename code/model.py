"""The example's model: a small CNN for 8x8 digits. Usage: model = Net(args)

Swap this file for your own model; main.py only needs an nn.Module that maps a batch of
inputs to logits.
"""
from torch import nn


class Net(nn.Module):
    def __init__(self, args, in_channels=1, classes=10, size=8):
        super().__init__()
        c1, c2 = args.channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * (size // 2) ** 2, args.hidden), nn.ReLU(),
            nn.Dropout(args.dropout),
            nn.Linear(args.hidden, classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
