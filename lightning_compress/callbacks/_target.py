"""The timing of a size target: the deadline in optimizer steps, the closing steps before it, the hold after."""

from __future__ import annotations

import math
from typing import Protocol

import lightning.pytorch as pl

from lightning_compress._checks import ArgumentError

__all__ = ["Budget", "Steering"]


class Budget(Protocol):
    """What a regularizer's size budget offers the steering (:class:`~lightning_compress.regularizers.GroupBudget`)."""

    stale: bool
    ratio: float
    dense: dict[str, int]

    def select(self) -> None: ...
    def shrink_(self, steps_left: int, total_steps: int | None = None) -> float: ...
    def hold_(self) -> None: ...
    def goal(self) -> float: ...
    def calibrate(self, exact: dict[str, int]) -> None: ...


class Steering:
    """Where a fit is relative to its target's deadline (the end of epoch ``deadline - 1``).

    Selections are made ``selections_per_epoch`` times an epoch and on the deadline step; the chosen
    groups' shrinkage closes in on the deadline (see :func:`~lightning_compress.functional.closing_unit`),
    every other removable group is shrunk at the constant rate that would zero a boundary group in
    ``background_share`` of the steered steps; after the deadline the chosen groups are held at zero.

    Example:
        >>> s = Steering(every_n_steps=1); s.steps_per_epoch, s.deadline = 10, 3
        >>> s.calls_left(steps=29), s.calls_left(steps=30), s.calls_left(steps=31)
        (2, 1, 0)
    """

    selections_per_epoch = 10
    background_share = 1 / 3  # the uniform shrinkage would zero a boundary group in this share of the run

    def __init__(self, every_n_steps: int) -> None:
        self.every_n_steps = every_n_steps
        self.steps_per_epoch = 0
        self.deadline = 0  # epochs
        self.unit = 0.0  # the last shrinkage step, in score units
        self.start_epoch = 0

    def start(self, trainer: pl.Trainer, stop_epoch: int | None, argument: str) -> None:
        """Read the deadline (``stop_epoch``, else two thirds of ``max_epochs``) and the steps an epoch takes."""
        last = trainer.max_epochs
        if stop_epoch is not None:
            self.deadline = stop_epoch
        elif last is None or last < 1:
            raise ArgumentError(
                argument, f"{argument} needs stop_epoch or max_epochs: the epoch to reach it by"
            )
        else:
            self.deadline = max(1, 2 * last // 3)
        batches = trainer.num_training_batches
        if not math.isfinite(batches):
            raise ArgumentError(
                argument, f"{argument} needs a training set of known length (batches per epoch)"
            )
        self.steps_per_epoch = max(1, math.ceil(int(batches) / trainer.accumulate_grad_batches))

    def calls_left(self, steps: int) -> int:
        """Prox calls left up to the deadline step, that call included (0: past it)."""
        left = self.deadline * self.steps_per_epoch - steps
        return left // self.every_n_steps + 1 if left >= 0 else 0

    def step(self, budget: Budget, steps: int, epoch_calls_left: int | None = None) -> None:
        """One prox call: shrink towards the deadline, or hold after it. ``epoch_calls_left``: the calls
        left when the prox runs once an epoch (the epochs left to the deadline, this one included)."""
        if epoch_calls_left is None:
            calls = self.calls_left(steps)
            steered = self.calls_left(self.start_epoch * self.steps_per_epoch)
        else:
            calls, steered = epoch_calls_left, self.deadline - self.start_epoch
        if calls <= 0:
            budget.hold_()
            self.unit = 0.0
            return
        every = max(1, self.steps_per_epoch // (self.selections_per_epoch * self.every_n_steps))
        if (
            budget.stale
            or calls == 1
            or epoch_calls_left is not None
            or (steps // self.every_n_steps) % every == 0
        ):
            budget.select()
        self.unit = budget.shrink_(calls, max(1, round(steered * self.background_share)))
        if calls == 1:  # the deadline: exactly zero, not a rounding error away from it
            budget.hold_()
