"""Which groups to remove: thresholds on group norms with a minimum width."""

from __future__ import annotations

import torch

__all__ = ["even_per_block", "select_removable"]


def select_removable(
    norms: torch.Tensor, *, threshold: float = 0.0, relative_threshold: float = 0.0, min_keep: int = 1
) -> tuple[torch.Tensor, bool]:
    """Indices of groups whose norm is ``<= max(threshold, relative_threshold * max(norms))``.

    At least ``min_keep`` groups (the largest) always survive.

    Returns:
        ``(indices, clamped)``: sorted indices to remove, and whether ``min_keep`` stopped more removals.

    Example:
        >>> select_removable(torch.tensor([0.0, 2.0, 0.0, 1e-4]), relative_threshold=1e-3)
        (tensor([0, 2, 3]), False)
        >>> select_removable(torch.zeros(4), min_keep=2)
        (tensor([2, 3]), True)
    """
    if threshold < 0 or relative_threshold < 0:
        raise ValueError(f"thresholds must be >= 0, got {threshold=}, {relative_threshold=}")
    if min_keep < 1:
        raise ValueError(f"min_keep must be >= 1, got {min_keep=}")
    cut = max(threshold, relative_threshold * float(norms.max())) if norms.numel() else threshold
    dead = norms <= cut
    n_keep = norms.numel() - int(dead.sum())
    clamped = n_keep < min_keep
    if clamped:
        # keep the min_keep largest norms (ties broken by index, so every rank agrees)
        order = torch.argsort(norms, descending=True, stable=True)
        dead = torch.ones_like(dead)
        dead[order[: min(min_keep, norms.numel())]] = False
    return torch.nonzero(dead).flatten(), clamped


def even_per_block(index: torch.Tensor, norms: torch.Tensor, blocks: int) -> torch.Tensor:
    """The part of ``index`` that removes the same number of groups from each of ``blocks`` equal blocks.

    Each block keeps its ``k`` smallest-norm candidates, ``k`` the fewest candidates any block has, so a
    grouped convolution's width stays divisible by its number of groups.

    Example:
        >>> norms = torch.tensor([0.0, 0.1, 5.0, 0.0, 3.0, 4.0])   # blocks [0, 1, 2] and [3, 4, 5]
        >>> even_per_block(torch.tensor([0, 1, 3]), norms, blocks=2)
        tensor([0, 3])
    """
    if blocks <= 1 or not len(index):
        return index
    size = norms.numel() // blocks
    if size * blocks != norms.numel():
        raise ValueError(f"{norms.numel()} groups do not split into {blocks} equal blocks")
    per_block = [index[index // size == b] for b in range(blocks)]
    k = min(len(p) for p in per_block)
    kept = [p[torch.argsort(norms[p], stable=True)[:k]] for p in per_block]
    return torch.sort(torch.cat(kept)).values
