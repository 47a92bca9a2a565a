"""The (sparse, trimmed, cost-weighted) group lasso on neurons and channels: the regularizer behind
:class:`~lightning_compress.callbacks.GroupSparsity`, usable in a plain PyTorch loop."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

import torch
from torch import nn

from lightning_compress._checks import ArgumentError, check_choice, check_nonneg
from lightning_compress.functional import (
    GroupPiece,
    batched_group_prox_,
    sliced_group_sizes,
    sliced_group_sq_norms,
    sliced_penalty,
    sliced_penalty_grad_,
    sliced_prox_,
    trimmed,
)
from lightning_compress.regularizers.base import AttachedRegularizer
from lightning_compress.surgery import (
    INPUTS_SUFFIX,
    GroupMode,
    LayerSelector,
    NeuronGroups,
    check_selectors,
    find_groups,
    group_cost_weights,
    input_groups,
)
from lightning_compress.surgery.groups import GroupModeName

__all__ = ["Cost", "GroupLasso"]


class Cost(str, Enum):
    """What a group's weight stands for: parameters (the paper's ``sqrt(P)``) or MACs saved.

    Example:
        >>> GroupLasso(cost="macs").cost is Cost.macs
        True
    """

    params = "params"
    macs = "macs"


CostName = Literal["params", "macs"]
"""The values of :class:`Cost`, for signatures that command-line parsers read (``Literal`` choices)."""


@dataclass
class _Family:
    """One layer's groups as the prox sees them."""

    groups: NeuronGroups
    mode: GroupMode
    pieces: list[GroupPiece]
    sizes: torch.Tensor  # parameters per group
    sqrt_sizes: torch.Tensor
    strength: float  # the layer's strength times its cost weight
    keep: int  # trimmed: groups left unpenalized


@dataclass
class _Batch:
    """The families with a nonzero strength, packed for one batched group soft-threshold."""

    pieces: list[list[GroupPiece]]
    num_groups: list[int]
    thresholds: torch.Tensor  # strength * sqrt(P_g), family after family
    keep: list[int]


class GroupLasso(AttachedRegularizer):
    r"""Group lasso / sparse group lasso over every neuron and channel (Alvarez & Salzmann, NIPS 2016).

    The penalty is :math:`\sum_l \lambda_l \big[(1-\alpha)\sqrt{P_l}\sum_n \|\theta_{ln}\|_2 + \alpha\|\theta_l\|_1\big]`
    with one group per neuron (all parameters coupled to it, see ``groups``). :meth:`prox_` is its exact
    proximal operator; call it after ``optimizer.step()`` with the learning rate as step size.

    Args:
        strength: :math:`\lambda`, the default strength of every layer.
        l1_ratio: :math:`\alpha` in [0, 1]: 0 is the group lasso, >0 the sparse group lasso.
        layer_strengths: Name pattern -> strength, overriding ``strength`` for matching layers.
        groups: ``"incoming"`` (a neuron's weights, bias and norm entries: the paper's), ``"coupled"``
            (also the next layers' input weights) or ``"bn"`` (only the BatchNorm scale and shift where
            every producer of a channel is followed by one).
        include: Only layers matching these name patterns or module types.
        exclude: Never these layers. The output layer is never regularized.
        input_layers: Linear layers whose input features (e.g. pixels) are groups too, one per column.
        input_strength: Strength of the input-feature groups (default: ``strength``).
        cost: ``"params"`` (the paper's :math:`\sqrt{P}` weights) or ``"macs"``: also weight each layer by
            the MACs a group's removal saves per parameter it saves, over that ratio for the whole model,
            so the lasso removes compute rather than parameters. Re-measured after every shape change.
        cost_exponent: With ``cost="macs"``, the ratio is raised to this power (0 is the paper's weights).
        keep_ratio: The trimmed group lasso (Yun et al., NeurIPS 2019): in every layer the
            ``ceil(keep_ratio * width)`` groups whose penalty costs the most are left unpenalized (width
            when first attached), a floor the lasso cannot take a layer below. Exact for ``l1_ratio=0``;
            with an L1 mix, the groups of largest weighted norm go free. Input features are not trimmed.

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> model = LeNet300100(hidden=(8, 4)); reg = GroupLasso(strength=10.0)
        >>> reg.attach(model, torch.zeros(1, 1, 28, 28))
        >>> reg.prox_(step=0.1)   # after optimizer.step(), with the learning rate
        >>> reg.zero_groups()
        {'1': 8, '3': 4}
    """

    def __init__(
        self,
        strength: float = 1e-4,
        *,
        l1_ratio: float = 0.0,
        layer_strengths: Mapping[str, float] | None = None,
        groups: GroupMode | GroupModeName = GroupMode.incoming,
        include: Sequence[LayerSelector] | None = None,
        exclude: Sequence[LayerSelector] = (),
        input_layers: Sequence[str] = (),
        input_strength: float | None = None,
        cost: Cost | CostName = Cost.params,
        cost_exponent: float = 1.0,
        keep_ratio: float = 0.0,
    ) -> None:
        super().__init__()
        self.strength = check_nonneg(strength, "strength")
        if isinstance(l1_ratio, bool) or not isinstance(l1_ratio, (int, float)) or not 0.0 <= l1_ratio <= 1.0:
            raise ArgumentError("l1_ratio", f"l1_ratio must be in [0, 1], got {l1_ratio=}")
        self.l1_ratio = float(l1_ratio)
        self.layer_strengths = {
            str(k): check_nonneg(v, f"layer_strengths[{k!r}]") for k, v in (layer_strengths or {}).items()
        }
        self.groups = check_choice(GroupMode, groups, "groups")
        check_selectors(include, exclude)
        self.include = list(include) if include else None
        self.exclude = list(exclude)
        if isinstance(input_layers, str):
            raise ArgumentError(
                "input_layers", f"input_layers must be a list of layer names, got {input_layers!r}"
            )
        self.input_layers = list(input_layers)
        self.input_strength = (
            self.strength if input_strength is None else check_nonneg(input_strength, "input_strength")
        )
        self.cost = check_choice(Cost, cost, "cost")
        self.cost_exponent = check_nonneg(cost_exponent, "cost_exponent")
        if isinstance(keep_ratio, bool) or not (
            isinstance(keep_ratio, (int, float)) and 0.0 <= keep_ratio < 1.0
        ):
            raise ArgumentError("keep_ratio", f"keep_ratio must be a fraction in [0, 1), got {keep_ratio=!r}")
        self.keep_ratio = float(keep_ratio)
        self.widths: dict[str, int] = {}  # layer -> number of groups when first seen (keep_ratio's base)
        self._families: list[_Family] = []
        self._batch = _Batch([], [], torch.empty(0), [])

    def __repr__(self) -> str:
        return f"GroupLasso(strength={self.strength}, l1_ratio={self.l1_ratio}, groups={self.groups.value!r})"

    # ------------------------------------------------------------- set-up
    def _layer_strength(self, family: NeuronGroups) -> float:
        for pattern, value in self.layer_strengths.items():
            if any(fnmatch.fnmatchcase(name, pattern) for name in family.layers):
                return value
        return self.strength

    def _build(self, model: nn.Module, x: Any) -> None:
        """Find the groups, their sizes, strengths and floors (after any shape change)."""
        found = find_groups(model, x, include=self.include, exclude=self.exclude)
        if not found:
            raise ValueError("no layer to regularize: include/exclude leave no prunable layer")
        layers = [n for f in found for n in f.layers]
        for pattern in self.layer_strengths:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in layers):
                raise ArgumentError(
                    "layer_strengths",
                    f"layer_strengths pattern {pattern!r} matches no regularized layer: {layers}",
                )
        weights = group_cost_weights(model, found, x, self.cost_exponent) if self.cost == Cost.macs else {}
        self._families = []
        for family in found:
            width = self.widths.setdefault(family.name, family.num_groups)
            # 1e-9: 0.07 * 100 is 7.000000000000001 in floating point, and its ceiling would be 8
            keep = math.ceil(self.keep_ratio * width - 1e-9) if self.keep_ratio else 0
            lam = self._layer_strength(family) * weights.get(family.name, 1.0)
            self._families.append(self._family(family, self.groups, lam, keep))
        for name in self.input_layers:
            lam = self.input_strength * weights.get(INPUTS_SUFFIX, 1.0)
            self._families.append(self._family(input_groups(model, name), GroupMode.incoming, lam, 0))
        active = [f for f in self._families if f.strength > 0]
        self._batch = _Batch(
            [f.pieces for f in active],
            [f.groups.num_groups for f in active],
            torch.cat([f.sqrt_sizes * f.strength for f in active]) if active else torch.empty(0),
            [f.keep for f in active],
        )

    def _family(self, groups: NeuronGroups, mode: GroupMode, strength: float, keep: int) -> _Family:
        pieces = groups.pieces(self.model, mode)
        sizes = sliced_group_sizes(pieces, groups.num_groups)
        return _Family(groups, mode, pieces, sizes, sizes.sqrt(), strength, keep)

    @property
    def families(self) -> list[_Family]:
        """The regularized families (after the last refresh): groups, pieces, sizes, strength, floor."""
        self.refresh()
        return self._families

    # ------------------------------------------------------------- the math
    def _strengths(self, family: _Family, scale: float = 1.0) -> float | torch.Tensor:
        """The family's strength, or one per group with its ``keep`` largest weighted norms freed."""
        lam = family.strength * scale
        if family.keep == 0:
            return lam
        sq = sliced_group_sq_norms(family.pieces, family.groups.num_groups)
        return trimmed(torch.full_like(sq, lam), sq * family.sizes, family.keep)  # (sqrt(P_g) ||w_g||)^2

    def prox_(self, step: float) -> None:
        """The exact proximal step of ``step`` times the penalty, in place (once after each optimizer step)."""
        if step == 0.0:
            return
        self.refresh()
        if self.l1_ratio == 0.0:  # the plain group lasso: every family in one batched prox
            b = self._batch
            batched_group_prox_(b.pieces, b.num_groups, b.thresholds, step, b.keep)
            return
        for f in self._families:
            if f.strength > 0:
                n = f.groups.num_groups
                sliced_prox_(f.pieces, n, step, self._strengths(f), self.l1_ratio, sqrt_sizes=f.sqrt_sizes)

    @torch.no_grad()
    def penalty(self) -> torch.Tensor:
        """The penalty at full strength (trimmed groups excluded)."""
        self.refresh()
        total = torch.zeros(())
        for f in self._families:
            n = f.groups.num_groups
            total = total + sliced_penalty(f.pieces, n, self._strengths(f), self.l1_ratio, f.sizes).cpu()
        return total

    def add_subgradient_(self, scale: float = 1.0) -> None:
        """Add ``scale`` times the penalty's subgradient to the gradients (zero at a zero group)."""
        self.refresh()
        for f in self._families:
            params = f.groups.parameters(self.model, f.mode)
            if f.strength == 0 or any(p.grad is None for p in params):
                continue
            grads = [p.grad for p in params if p.grad is not None]
            lam = self._strengths(f, scale)
            sliced_penalty_grad_(f.pieces, grads, f.groups.num_groups, lam, self.l1_ratio, f.sizes)

    @torch.no_grad()
    def zero_groups(self) -> dict[str, int]:
        """Number of groups exactly at zero, by root layer (``"<layer>:inputs"`` for input features)."""
        self.refresh()
        return {
            f.groups.name: int((sliced_group_sq_norms(f.pieces, f.groups.num_groups) == 0).sum())
            for f in self._families
        }

    def metrics(self) -> dict[str, float]:
        """``penalty``, ``zero_groups`` and ``zero/<layer>`` counts."""
        zeros = self.zero_groups()
        out = {"penalty": float(self.penalty()), "zero_groups": float(sum(zeros.values()))}
        out.update({f"zero/{name}": float(count) for name, count in zeros.items()})
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"widths": dict(self.widths)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.widths = {str(k): int(v) for k, v in state.get("widths", {}).items()}
        self._version = -1  # the floors may have changed
