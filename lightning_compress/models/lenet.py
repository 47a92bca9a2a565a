"""LeNet-300-100 and LeNet-5 (the Caffe variant used throughout the pruning literature)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["LeNet5", "LeNet300100"]


class LeNet300100(nn.Sequential):
    """Fully connected 784-300-100-10 network with ReLU (LeCun et al. 1998).

    Args:
        hidden: Widths of the hidden layers (``(600, 200)`` gives an over-complete start).
        num_classes: Output classes.
        in_features: Flattened input size.

    Example:
        >>> model = LeNet300100()
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> sum(p.numel() for p in model.parameters())
        266610
    """

    def __init__(
        self, hidden: Sequence[int] = (300, 100), num_classes: int = 10, in_features: int = 784
    ) -> None:
        if not hidden or any(int(h) <= 0 for h in hidden):
            raise ValueError(f"hidden widths must be positive, got {hidden=}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


class LeNet5(nn.Module):
    """Two 5x5 conv layers (20, 50 channels) with max-pooling, then 500 hidden units (Caffe's LeNet).

    Args:
        channels: Output channels of the two conv layers.
        hidden: Width of the hidden fully connected layer.
        num_classes: Output classes.

    Example:
        >>> model = LeNet5()
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> sum(p.numel() for p in model.parameters())
        431080
    """

    def __init__(self, channels: Sequence[int] = (20, 50), hidden: int = 500, num_classes: int = 10) -> None:
        super().__init__()
        if len(channels) != 2 or min(channels) <= 0 or hidden <= 0:
            raise ValueError(f"need two positive channel counts and a positive hidden width, got {channels=}")
        c1, c2 = (int(c) for c in channels)
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * 4 * 4, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
