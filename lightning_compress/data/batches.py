"""In-memory tensors served a whole batch at a time, in a seeded order that a resumed run repeats."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["EpochShuffle"]


class _BatchTensorDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """In-memory tensors that a DataLoader fetches a whole batch at a time (``__getitems__``)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = indices if isinstance(indices, torch.Tensor) else torch.as_tensor(indices)
        return self.images[index], self.labels[index]


class EpochShuffle(Sampler[int]):
    """A random order that depends only on a seed and the epoch, so a resumed run sees the same batches.

    Lightning calls :meth:`set_epoch` before every epoch. The seed defaults to the global torch seed when
    the loader is made (``seed_everything`` sets it), so runs with the same seed shuffle alike.

    Example:
        >>> s = EpochShuffle(5, seed=0); s.set_epoch(3); a = list(s)
        >>> t = EpochShuffle(5, seed=0); t.set_epoch(3); a == list(t), sorted(a)
        (True, [0, 1, 2, 3, 4])
    """

    def __init__(self, size: int, seed: int | None = None) -> None:
        self.size = size
        self.seed = torch.initial_seed() if seed is None else seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def order(self) -> torch.Tensor:
        """This epoch's order as one tensor."""
        generator = torch.Generator().manual_seed(self.seed + 7919 * self.epoch)
        return torch.randperm(self.size, generator=generator)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order().tolist())
