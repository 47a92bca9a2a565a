"""What every regularizer offers: a penalty with its proximal step, usable with or without Lightning."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["Regularizer"]


@runtime_checkable
class Regularizer(Protocol):
    """A structured penalty on a model's weights, applied by proximal steps after ``optimizer.step()``.

    The protocol a method implements to be scheduled by the proximal callbacks (warm-up, ramp, stop,
    every N steps, epoch end or subgradient), or called from a plain PyTorch loop:

    .. code-block:: python

        reg.attach(model, example_input)   # once, after the model is on its device
        for x, y in data:
            loss = criterion(model(x), y)
            loss.backward(); optimizer.step(); optimizer.zero_grad()
            reg.prox_(optimizer.param_groups[0]["lr"])   # exact proximal step with step size = LR

    After a shape change (pruning, factorization) the regularizer notices the model's history moved and
    refreshes itself before its next step; :meth:`refresh` forces that.

    Example:
        >>> from lightning_compress.regularizers import GroupLasso
        >>> isinstance(GroupLasso(), Regularizer)
        True
    """

    def attach(self, model: nn.Module, example_inputs: Any) -> None:
        """Find what the penalty acts on in ``model``; ``example_inputs`` (or a zero-argument callable
        returning them) is used for tracing."""

    def refresh(self, *, force: bool = False) -> None:
        """Rebuild after a shape change (done automatically when the model's history moved)."""

    def penalty(self) -> torch.Tensor:
        """The penalty's current value at full strength."""
        ...

    def prox_(self, step: float) -> None:
        """The exact proximal step with step size ``step`` (strength times ``step``), in place."""

    def add_subgradient_(self, scale: float = 1.0) -> None:
        """Add ``scale`` times a subgradient of the penalty to the parameters' ``.grad``."""

    def metrics(self) -> dict[str, float]:
        """Values worth logging (the penalty, counts of what reached zero), by short name."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Plain-typed state that must survive a checkpoint."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
