"""Which units (neurons, singular values) a size budget removes, and how fast they are shrunk to zero.

A size target is met by choosing the units to remove from their scores (a unit's norm over the threshold
the penalty gives it, so the lowest score is the one the penalty would zero first) and shrinking only
those, faster as the deadline nears: on the last step the shrinkage reaches the largest chosen score, so
every chosen unit is exactly zero then, whatever the optimizer did in between.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["BudgetError", "closing_unit", "fewest_to_budget"]


class BudgetError(ValueError):
    """The budget cannot be met: even removing every unit that may go leaves the model larger.

    Example:
        >>> str(BudgetError(120.0, 100.0))
        'removing every removable unit leaves a size of 120, above the target 100'
    """

    def __init__(self, smallest: float, budget: float) -> None:
        super().__init__(
            f"removing every removable unit leaves a size of {smallest:,.0f}, above the target {budget:,.0f}"
        )
        self.smallest = smallest
        self.budget = budget


def fewest_to_budget(
    scores: torch.Tensor, free: torch.Tensor, size: Callable[[torch.Tensor], float], budget: float
) -> torch.Tensor:
    """The removal mask of the fewest lowest-score free units whose removal brings ``size`` to ``budget``.

    Args:
        scores: One score per unit; the lowest go first.
        free: Which units may go (the others are floors).
        size: The size left by a removal mask (a boolean tensor like ``scores``); it must not grow when
            more units go.
        budget: The largest size allowed.

    Returns:
        A boolean mask: ``size(mask) <= budget``, and keeping the last unit it removes would not be.

    Raises:
        BudgetError: when removing every free unit still leaves ``size > budget``.

    Example:
        >>> scores = torch.tensor([0.5, 0.1, 0.9, 0.3]); free = torch.tensor([True, True, True, False])
        >>> fewest_to_budget(scores, free, lambda mask: float(4 - mask.sum()), budget=2.0).tolist()
        [True, True, False, False]
    """
    candidates = torch.nonzero(free).flatten()
    order = candidates[torch.argsort(scores[candidates], stable=True)]

    def mask_of(k: int) -> torch.Tensor:
        mask = torch.zeros_like(free)
        mask[order[:k]] = True
        return mask

    if size(mask_of(0)) <= budget:
        return mask_of(0)
    smallest = size(mask_of(len(order)))
    if smallest > budget:
        raise BudgetError(smallest, budget)
    low, high = 0, len(order)  # size(low) > budget >= size(high)
    while high - low > 1:
        middle = (low + high) // 2
        if size(mask_of(middle)) <= budget:
            high = middle
        else:
            low = middle
    return mask_of(high)


def closing_unit(boundary: float, steps_left: int) -> float:
    """The shrinkage per step, in score units, that takes a unit at ``boundary`` to zero in ``steps_left``.

    On the last step (``steps_left <= 1``) it is the boundary itself: every unit scored at most that goes
    to exactly zero.

    Example:
        >>> closing_unit(0.6, 3), closing_unit(0.6, 1), closing_unit(0.6, 0)
        (0.19999999999999998, 0.6, 0.6)
    """
    return boundary / max(steps_left, 1)
