"""A small ResNet for 32x32 images sized for a CPU, and the projector MLP."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class SmallResNet(nn.Module):
    """Stem conv3x3 (stride ``stem_stride``) - BN - ReLU, one BasicBlock per width (the first at
    stride 1, the others at stride 2), global average pooling; ``dim`` = the last width.
    ``widths=(16, 32, 64), stem_stride=2`` is a ResNet-8 of 0.08 M parameters (~3 M multiply-adds
    per 32x32 image)."""

    def __init__(self, widths=(16, 32, 64), stem_stride: int = 2, in_channels: int = 3):
        super().__init__()
        widths = list(widths)
        if not widths or any(int(w) < 1 for w in widths):
            raise ValueError(f"model.widths must be a non-empty list of positive ints, got {widths}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(cin, w, 1 if i == 0 else 2))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.dim = cin

    def forward(self, x):
        return self.blocks(self.stem(x)).mean(dim=(2, 3))


def projector(dim: int, hidden: int, out: int) -> nn.Module:
    """BYOL's projector: Linear - BatchNorm - ReLU - Linear."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out))


class Encoder(nn.Module):
    """backbone + projector; returns (features h, embedding z)."""

    def __init__(self, widths, stem_stride, proj_hidden, proj_dim):
        super().__init__()
        self.backbone = SmallResNet(widths, stem_stride)
        self.projector = projector(self.backbone.dim, proj_hidden, proj_dim)

    def forward(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone(x)
        return h, self.projector(h)
