"""What every regularizer offers: a penalty with its proximal step, usable with or without Lightning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from lightning_compress.surgery import history_version

__all__ = ["AttachedRegularizer", "Regularizer"]


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


class AttachedRegularizer:
    """What every regularizer does with its model: keep it, trace it, and notice shape changes.

    Subclasses implement ``_build(model, example_inputs)``, called by :meth:`refresh` when the model's
    compression history moved (a prune, a split) or when forced.

    Example:
        >>> class Count(AttachedRegularizer):
        ...     def _build(self, model, example_inputs):
        ...         self.layers = len(list(model.children()))
        >>> reg = Count(); reg.attach(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), torch.zeros(1, 2)); reg.layers
        2
    """

    def __init__(self) -> None:
        self._model: nn.Module | None = None
        self._inputs: Any = None
        self._version = -1

    def attach(self, model: nn.Module, example_inputs: Any | Callable[[], Any]) -> None:
        """Find what the penalty acts on in ``model`` (traced with ``example_inputs``, or a callable
        returning them, called each time the model is traced again)."""
        self._model, self._inputs = model, example_inputs
        self.refresh(force=True)

    @property
    def model(self) -> nn.Module:
        """The attached model."""
        if self._model is None:
            raise RuntimeError(
                f"{type(self).__name__} is not attached to a model: call attach(model, example_inputs)"
            )
        return self._model

    @property
    def version(self) -> int:
        """The model's history version at the last build (changes after every shape change)."""
        return self._version

    def example_inputs(self) -> Any:
        """The inputs the model is traced with (the callable given to :meth:`attach` called)."""
        self.model  # noqa: B018 (attached, or the one-line error)
        return self._inputs() if callable(self._inputs) else self._inputs

    def refresh(self, *, force: bool = False) -> None:
        """Rebuild if the model's shape changed since the last build (or if ``force``)."""
        model = self.model
        version = history_version(model)
        if version == self._version and not force:
            return
        self._build(model, self.example_inputs())
        self._version = version

    def _build(self, model: nn.Module, example_inputs: Any) -> None:
        raise NotImplementedError
