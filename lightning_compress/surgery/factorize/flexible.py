"""Flexible-rank layers: a Linear or Conv2d that holds its weight's SVD and runs at a rank set at run time.

:func:`make_flexible` turns the named layers of a model into :class:`FlexibleLinear` / :class:`FlexibleConv2d`
in place (the same parameters, names and state dict: a checkpoint, an optimizer and DDP see no change);
:func:`make_plain` turns them back. A flexible layer with ``rank = None`` is its plain layer; with a rank
it computes with the weight truncated to that rank, through the factors last given by
:meth:`FlexibleMixin.refresh` (the truncated SVD when they are fresh):

- ``grad="exact"``: the dense truncated weight, its gradient through the truncated SVD with the clipped
  formula of :func:`~lightning_compress.functional.truncation_grad`;
- ``grad="projected"``: two thin products (``x V_r``, then ``(W V_r)``), the gradient reaching ``W``
  through ``W V_r`` with the basis ``V_r`` held fixed: the first term of the exact gradient, at the
  cost of a rank-``r`` layer. A Conv2d is split as :func:`factorized` splits it: ``k x k`` to ``r``
  channels, then ``1 x 1``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from lightning_compress.functional.flexible_rank import low_rank_weight, svd_factors
from lightning_compress.surgery.base import is_conv1d

__all__ = [
    "FlexibleConv2d",
    "FlexibleLinear",
    "FlexibleMixin",
    "flexible_layers",
    "make_flexible",
    "make_plain",
]

Grad = Literal["exact", "projected"]


class FlexibleMixin:
    """What a flexible layer adds to its plain class: ``rank``, ``factors`` (``(U, s, V)`` of the weight's
    matrix, not in the state dict), ``grad``, ``eps``.

    Example:
        >>> layer = make_flexible(nn.Sequential(nn.Linear(4, 3)), ["0"])[0]
        >>> isinstance(layer, FlexibleMixin), layer.refresh().shape, "factors" in layer.state_dict()
        (True, torch.Size([3]), False)
    """

    rank: int | None = None
    factors: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    grad: Grad = "projected"
    eps: float = 0.99
    weight: nn.Parameter

    def refresh(self) -> torch.Tensor:
        """Recompute the weight's SVD; returns its singular values."""
        self.factors = svd_factors(self.weight.reshape(self.weight.shape[0], -1))
        return self.factors[1]

    def _thin(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(V_r, W V_r)``: the fixed basis and the weight's image in it."""
        assert self.factors is not None and self.rank is not None
        v = self.factors[2][:, : self.rank].to(self.weight.dtype)
        return v, self.weight.reshape(self.weight.shape[0], -1) @ v

    def _truncated(self) -> torch.Tensor:
        assert self.factors is not None and self.rank is not None
        return low_rank_weight(self.weight, self.factors, self.rank, self.eps)

    def _low_rank(self, x: torch.Tensor) -> torch.Tensor | None:
        """The layer at ``rank`` (``None`` at full rank: the plain layer runs)."""
        if self.rank is None:
            return None
        if self.grad == "exact":
            return self._with_weight(x, self._truncated())
        return self._thin_forward(x, *self._thin())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer at ``rank``, or its own forward at full rank."""
        low = self._low_rank(x)
        return super().forward(x) if low is None else low  # type: ignore[misc]

    def _with_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _thin_forward(self, x: torch.Tensor, v: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _LinearRank(FlexibleMixin):
    bias: torch.Tensor | None

    def _with_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight, self.bias)

    def _thin_forward(self, x: torch.Tensor, v: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return F.linear(x @ v, image, self.bias)


class _Conv2dRank(FlexibleMixin):
    bias: torch.Tensor | None
    _conv_forward: Any

    def _with_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, weight, self.bias)

    def _thin_forward(self, x: torch.Tensor, v: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        basis = v.mT.reshape(v.shape[1], *self.weight.shape[1:])
        hidden = self._conv_forward(x, basis, None)  # k x k to rank channels (stride, padding, mode)
        return F.conv2d(hidden, image[:, :, None, None], self.bias)


class _Conv1DRank(FlexibleMixin):
    """Hugging Face's ``Conv1D`` (GPT-2: ``x @ W + b``, ``W`` stored ``(in, out)``) at ``rank``."""

    bias: torch.Tensor

    def _with_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return x @ weight + self.bias

    def _thin_forward(self, x: torch.Tensor, v: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return (x @ image) @ v.mT + self.bias  # W V_r V_r^T with W seen (in, out)


class FlexibleLinear(_LinearRank, nn.Linear):  # type: ignore[misc]
    """A :class:`torch.nn.Linear` that runs at ``rank`` (``None``: full).

    Example:
        >>> layer = make_flexible(nn.Sequential(nn.Linear(6, 4)), ["0"])[0]; _ = layer.refresh()
        >>> x = torch.randn(2, 6); full = layer(x); layer.rank = 4
        >>> torch.allclose(layer(x), full, atol=1e-5)
        True
    """


class FlexibleConv2d(_Conv2dRank, nn.Conv2d):  # type: ignore[misc]
    """A :class:`torch.nn.Conv2d` (``groups=1``) that runs at ``rank`` (``None``: full).

    Example:
        >>> layer = make_flexible(nn.Sequential(nn.Conv2d(3, 5, 3)), ["0"])[0]; _ = layer.refresh()
        >>> x = torch.randn(1, 3, 6, 6); full = layer(x); layer.rank = 5
        >>> torch.allclose(layer(x), full, atol=1e-5)
        True
    """


_FLEXIBLE: dict[type, type] = {nn.Linear: FlexibleLinear, nn.Conv2d: FlexibleConv2d}


def _flexible_kind(layer: nn.Module) -> type | None:
    """The flexible class of ``layer``'s class; a subclass of ``Linear`` or ``Conv2d`` (timm's ``Linear``,
    say) or a Hugging Face ``Conv1D`` gets one made once, its own forward kept at full rank."""
    plain = type(layer)
    if plain not in _FLEXIBLE:
        rank = (
            _Conv1DRank
            if is_conv1d(layer)
            else _LinearRank
            if isinstance(layer, nn.Linear)
            else _Conv2dRank
            if isinstance(layer, nn.Conv2d)
            else None
        )
        if rank is None:
            return None
        _FLEXIBLE[plain] = type(f"Flexible{plain.__name__}", (rank, plain), {})
    return _FLEXIBLE[plain]


def flexible_layers(model: nn.Module) -> dict[str, FlexibleMixin]:
    """The model's flexible layers by name.

    Example:
        >>> list(flexible_layers(make_flexible(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2)), ["0"])))
        ['0']
    """
    return {n: m for n, m in model.named_modules() if isinstance(m, FlexibleMixin)}


def make_flexible(
    model: nn.Module, names: list[str], *, grad: Grad = "projected", eps: float = 0.99
) -> nn.Module:
    """Turn the layers ``names`` (``Linear``, ``groups=1`` ``Conv2d``, their subclasses, or Hugging Face
    ``Conv1D``) into flexible layers, in place; returns ``model``.

    Example:
        >>> model = make_flexible(nn.Sequential(nn.Linear(3, 3)), ["0"]); type(model[0]).__name__
        'FlexibleLinear'
    """
    if grad not in ("exact", "projected"):
        raise ValueError(f"grad must be 'exact' or 'projected', got {grad!r}")
    for name in names:
        layer = model.get_submodule(name)
        if isinstance(layer, FlexibleMixin):
            continue
        kind = _flexible_kind(layer)
        if kind is None or (isinstance(layer, nn.Conv2d) and layer.groups != 1):
            raise ValueError(f"layer {name!r} ({type(layer).__name__}) cannot be made flexible")
        layer.__class__ = kind  # the same object: parameters, hooks and optimizer state are kept
        flexible: Any = layer
        flexible.rank, flexible.factors, flexible.grad, flexible.eps = None, None, grad, eps
    return model


def make_plain(model: nn.Module) -> nn.Module:
    """Turn every flexible layer back into its plain class, in place; returns ``model``.

    Example:
        >>> type(make_plain(make_flexible(nn.Sequential(nn.Linear(3, 3)), ["0"]))[0]).__name__
        'Linear'
    """
    plain = {v: k for k, v in _FLEXIBLE.items()}
    for layer in flexible_layers(model).values():
        for attribute in ("rank", "factors", "grad", "eps"):
            layer.__dict__.pop(attribute, None)
        layer.__class__ = plain[type(layer)]
    return model
