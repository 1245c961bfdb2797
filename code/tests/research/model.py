"""Two models: an encoder with dropout and a linear head. Usage: encoder, head = Encoder(args), Head(args)"""
from torch import nn


class Encoder(nn.Module):
    def __init__(self, args):
        super().__init__()
        layers = [nn.Linear(args.features, args.width), nn.ReLU(), nn.Dropout(args.dropout)]
        for _ in range(args.depth - 1):
            layers += [nn.Linear(args.width, args.width), nn.ReLU()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class Head(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.out = nn.Linear(args.width, 1)

    def forward(self, h):
        return self.out(h)
