"""A small VGG-style CNN with BatchNorm, for 28x28 inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["SmallVGG"]


class SmallVGG(nn.Module):
    """Conv-BN-ReLU blocks with max-pooling (``"M"``), global average pooling and a linear classifier.

    Args:
        config: Channel counts and ``"M"`` for 2x2 max-pooling, as in the VGG paper's tables.
        num_classes: Output classes.
        in_channels: Input channels.

    Example:
        >>> model = SmallVGG()
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        config: Sequence[int | str] = (32, 32, "M", 64, 64, "M", 128, "M"),
        num_classes: int = 10,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            if not isinstance(item, int) or item <= 0:
                raise ValueError(f"config entries must be positive ints or 'M', got {item!r}")
            layers += [nn.Conv2d(width, item, 3, padding=1, bias=False), nn.BatchNorm2d(item), nn.ReLU()]
            width = item
        if width == in_channels:
            raise ValueError(f"config needs at least one conv layer, got {config=}")
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
