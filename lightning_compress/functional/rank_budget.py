"""Ranks for several layers under one parameter or MAC budget.

Each layer offers its ranks one at a time: rank ``i`` costs ``(m + n) * unit`` (``unit`` is 1 for
parameters, the output positions per sample for a conv's MACs) and removes ``errors[i] / sum(errors)``,
its share of the layer's error (for DALR the eigenvalues of ``Z Z^T``: the output energy; for SVD the
squared singular values of ``W``). Every layer gets rank 1; then ranks go, largest share per unit cost
first, while the budget lasts. Because each layer's shares only decrease, this greedy choice is optimal
for the relaxed (fractional) problem. A layer whose ranks reach the break-even point is kept dense if the
budget pays its dense cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

__all__ = ["LayerSpectrum", "allocate_ranks"]


@dataclass(frozen=True)
class LayerSpectrum:
    """What one layer offers to :func:`allocate_ranks`.

    Attributes:
        errors: The error each rank removes, largest first (``min(m, n)`` values, >= 0).
        shape: ``(m, n)``, the weight as a matrix.
        unit: Cost multiplier: 1 to count parameters, output positions per sample to count MACs.

    Example:
        >>> LayerSpectrum(torch.tensor([3.0, 1.0]), (2, 4)).max_rank
        1
    """

    errors: torch.Tensor
    shape: tuple[int, int]
    unit: float = 1.0

    @property
    def max_rank(self) -> int:
        """The largest rank whose two thin layers hold fewer parameters than the dense layer."""
        m, n = self.shape
        return max(0, min(min(m, n), math.ceil(m * n / (m + n)) - 1))

    def cost(self, rank: int | None) -> float:
        """The cost at ``rank`` (``None``: dense)."""
        m, n = self.shape
        return (m * n if rank is None else rank * (m + n)) * self.unit


def allocate_ranks(layers: Mapping[str, LayerSpectrum], budget: float) -> dict[str, int | None]:
    """A rank per layer (``None``: stays dense) whose total cost is at most ``budget``.

    Raises:
        ValueError: if the budget does not pay rank 1 in every layer.

    Example:
        >>> wide = LayerSpectrum(torch.tensor([9.0, 1.0, 0.0, 0.0]), (4, 40))
        >>> flat = LayerSpectrum(torch.tensor([1.0, 1.0, 1.0, 1.0]), (4, 40))
        >>> allocate_ranks({"wide": wide, "flat": flat}, budget=4 * 44)
        {'wide': 1, 'flat': 3}
    """
    rank = {name: 1 for name in layers}
    usable = {name: s for name, s in layers.items() if s.max_rank >= 1}
    if len(usable) != len(layers):
        bad = next(name for name in layers if name not in usable)
        raise ValueError(f"layer {bad!r} of shape {layers[bad].shape} cannot be split at any rank")
    spent = sum(s.cost(1) for s in layers.values())
    if spent > budget:
        raise ValueError(f"the budget {budget:,.0f} is below rank 1 in every layer ({spent:,.0f})")
    offers: list[tuple[float, str, int]] = []
    for name, s in layers.items():
        errors = s.errors.detach().double().clamp(min=0)
        total = float(errors.sum())
        shares = (errors / total if total > 0 else torch.zeros_like(errors)).tolist()
        step = s.cost(1)
        offers += [(shares[i - 1] / step, name, i) for i in range(2, s.max_rank + 1)]
    offers.sort(key=lambda o: (-o[0], o[2]))
    closed: set[str] = set()
    for _, name, i in offers:
        s = layers[name]
        if name in closed or i != rank[name] + 1:
            continue
        if spent + s.cost(1) > budget:
            closed.add(name)  # every further rank of this layer costs the same
            continue
        rank[name] = i
        spent += s.cost(1)
    result: dict[str, int | None] = dict(rank)
    for name, s in layers.items():
        r = rank[name]
        if r == s.max_rank and spent - s.cost(r) + s.cost(None) <= budget:
            spent += s.cost(None) - s.cost(r)
            result[name] = None
    return result
