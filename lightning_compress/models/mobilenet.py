"""A small MobileNet-style CNN (Howard et al. 2017; Sandler et al. 2018): depthwise-separable blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["InvertedResidual", "SmallMobileNet"]


class InvertedResidual(nn.Module):
    """1x1 expansion, 3x3 depthwise conv, 1x1 projection, each with BatchNorm; a residual add when shapes match.

    Example:
        >>> InvertedResidual(8, 16, expand=2, stride=2)(torch.zeros(1, 8, 8, 8)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, expand: int = 4, stride: int = 1) -> None:
        super().__init__()
        hidden = in_channels * expand
        self.expand = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()
        )
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
        )
        self.project = nn.Sequential(
            nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


class SmallMobileNet(nn.Module):
    """A stem conv, :class:`InvertedResidual` blocks, global pooling and a classifier.

    Args:
        stages: ``(out_channels, stride)`` of each block.
        stem: Channels of the stem conv.
        expand: Expansion factor of every block.
        num_classes: Output classes.
        in_channels: Input channels.

    Example:
        >>> SmallMobileNet()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        stages: Sequence[Sequence[int]] = ((16, 1), (24, 2), (24, 1), (32, 2), (32, 1)),
        stem: int = 16,
        expand: int = 4,
        num_classes: int = 10,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem), nn.ReLU6()
        )
        blocks, width = [], stem
        for out, stride in stages:
            blocks.append(InvertedResidual(width, out, expand, stride))
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.blocks(self.stem(x))).flatten(1))
