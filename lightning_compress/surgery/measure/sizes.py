"""Take one size out of a flexible-rank model: ranks that meet a budget, the splits that save, BatchNorm
statistics re-estimated for that size. The result is plain PyTorch with ``factorize`` records."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lightning_compress.functional.flexible_rank import global_ranks, ranks_for_budget, svd_factors
from lightning_compress.surgery.base import batch_input, is_conv1d
from lightning_compress.surgery.factorize import factorize_layer, low_rank_layers
from lightning_compress.surgery.factorize.flexible import make_plain
from lightning_compress.surgery.measure.size import layer_counts

__all__ = ["SizeBasis", "SizePlan", "plan_size", "recalibrate_batchnorm", "set_size", "size_basis"]


@dataclass
class SizePlan:
    """The ranks of one size: ``ratio`` (share of singular values kept), ``ranks`` (``None``: stays dense,
    the split would not save), and the ``params`` and ``macs`` of the model at those ranks.

    Example:
        >>> plan = plan_size(nn.Sequential(nn.Linear(20, 20), nn.Linear(20, 2)), torch.zeros(1, 20), ratio=1.0)
        >>> plan.ranks, plan.params == plan.dense["params"]
        ({'0': None}, True)
    """

    ratio: float
    ranks: dict[str, int | None]
    params: int
    macs: int
    dense: dict[str, int] = field(default_factory=dict)


@dataclass
class SizeBasis:
    """What every size of one model is planned from, computed once: the low-rank layers, each one's SVD
    ``(U, s, V)`` (of the matrix ``factorize`` splits: ``out x fan_in``), the weights' MACs per weight, and
    the dense totals."""

    factors: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    unit: dict[str, float]
    params: int
    macs: int


def size_basis(model: nn.Module, example_inputs: Any, layers: Sequence[str] | None = None) -> SizeBasis:
    """The :class:`SizeBasis` of ``model`` (one SVD per low-rank layer, one traced count).

    Example:
        >>> basis = size_basis(nn.Sequential(nn.Linear(20, 20), nn.Linear(20, 2)), torch.zeros(1, 20))
        >>> list(basis.factors), basis.params
        (['0'], 462)
    """
    names = list(layers) if layers is not None else low_rank_layers(model, example_inputs=example_inputs)
    params, macs, per_module = layer_counts(model, example_inputs)
    factors, unit = {}, {}
    for name in names:
        layer: Any = model.get_submodule(name)
        weight = layer.weight.T if is_conv1d(layer) else layer.weight.reshape(layer.weight.shape[0], -1)
        factors[name] = svd_factors(weight)
        own = layer.weight.numel() + (layer.bias.numel() if getattr(layer, "bias", None) is not None else 0)
        unit[name] = per_module.get(layer, own) / own  # MACs per weight (output positions)
    return SizeBasis(factors, unit, params, macs)


def _budget(value: float | None, dense: int, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be > 0 (a share <= 1 or a count), got {value!r}")
    budget = value * dense if value <= 1 else float(value)
    if budget > dense:
        raise ValueError(f"{name}={value} is above the model's size ({dense:,})")
    return budget


def plan_size(
    model: nn.Module,
    example_inputs: Any,
    *,
    params: float | None = None,
    macs: float | None = None,
    ratio: float | None = None,
    layers: Sequence[str] | None = None,
    min_rank: int = 1,
    basis: SizeBasis | None = None,
) -> SizePlan:
    """The ranks of ``model``'s low-rank layers that meet one budget from below: ``params`` or ``macs`` (a
    share of the dense model's, ``<= 1``, or a count), or ``ratio`` (the share of all layers' singular values
    kept, the paper's rho). One threshold on the singular values of all layers pooled decides the ranks.
    ``basis`` (:func:`size_basis`) saves its SVDs and count when many sizes of one model are planned.

    Example:
        >>> model = nn.Sequential(nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 2))
        >>> plan = plan_size(model, torch.zeros(1, 20), params=0.5)
        >>> plan.params <= 0.5 * 462, plan.ranks
        (True, {'0': 4})
    """
    if sum(v is not None for v in (params, macs, ratio)) != 1:
        raise ValueError("give exactly one of params=, macs=, ratio=")
    if ratio is not None and not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    basis = basis or size_basis(model, example_inputs, layers)
    total_params, total_macs, unit = basis.params, basis.macs, basis.unit
    budget_params = _budget(params, total_params, "params")
    budget_macs = _budget(macs, total_macs, "macs")
    spectra = {n: f[1] for n, f in basis.factors.items()}
    shape = {n: (f[0].shape[0], f[2].shape[0]) for n, f in basis.factors.items()}

    def size(ranks: dict[str, int], per: str) -> float:
        dense_total = total_params if per == "params" else total_macs
        change = 0.0
        for n, r in ranks.items():
            m, k = shape[n]
            scale = 1.0 if per == "params" else unit[n]
            change += (min(m * k, r * (m + k)) - m * k) * scale
        return dense_total + change

    if ratio is not None:
        chosen, kept = ratio, global_ranks(spectra, ratio, min_rank)
    else:
        per = "params" if budget_params is not None else "macs"
        budget = budget_params if budget_params is not None else budget_macs
        assert budget is not None
        chosen, kept = ranks_for_budget(spectra, lambda r: size(r, per), budget, min_rank)
    ranks: dict[str, int | None] = {
        n: (r if r * sum(shape[n]) < shape[n][0] * shape[n][1] else None) for n, r in kept.items()
    }
    return SizePlan(
        chosen,
        ranks,
        round(size(kept, "params")),
        round(size(kept, "macs")),
        {"params": total_params, "macs": total_macs},
    )


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, batches: Iterable[Any], max_batches: int = 50, input_key: str | None = None
) -> int:
    """Re-estimate every BatchNorm's running mean and variance from ``max_batches`` batches, in train mode
    (a cumulative average: each batch counts the same), then restore the model's mode. Returns the
    number of batches used (0 when the model has no BatchNorm).

    Example:
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).eval()
        >>> recalibrate_batchnorm(model, [torch.randn(8, 3) + 5 for _ in range(3)]), model.training
        (3, False)
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or max_batches <= 0:  # none asked for: the statistics the model has are kept
        return 0
    momenta = [m.momentum for m in norms]
    training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    used = 0
    try:
        for batch in batches:
            if used >= max_batches:
                break
            x = batch_input(batch, input_key) if not isinstance(batch, torch.Tensor) else batch
            model(x.to(next(model.parameters()).device))
            used += 1
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(training)
    return used


def set_size(
    model: nn.Module,
    example_inputs: Any,
    *,
    params: float | None = None,
    macs: float | None = None,
    ratio: float | None = None,
    batches: Iterable[Any] | None = None,
    bn_batches: int = 50,
    layers: Sequence[str] | None = None,
    min_rank: int = 1,
    input_key: str | None = None,
    basis: SizeBasis | None = None,
) -> nn.Module:
    """A copy of ``model`` at one size (:func:`plan_size`): each layer whose split saves is replaced by its
    two thin layers at the planned rank (a ``factorize`` record each), the others stay dense; BatchNorm
    statistics are re-estimated on ``bn_batches`` of ``batches``. Plain PyTorch: it saves, reloads with
    ``weights_only=True`` and exports like any compressed model. The splits use the SVDs of the plan's
    ``basis`` (:func:`size_basis` of ``model``; computed here when not given).

    Example:
        >>> model = nn.Sequential(nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 2))
        >>> small = set_size(model, torch.zeros(1, 20), params=0.5)
        >>> small[0], sum(p.numel() for p in small.parameters()) <= 231
        (Sequential(
          (0): Linear(in_features=20, out_features=4, bias=False)
          (1): Linear(in_features=4, out_features=20, bias=True)
        ), True)
    """
    small = make_plain(copy.deepcopy(model))
    basis = basis or size_basis(small, example_inputs, layers)
    plan = plan_size(
        small, example_inputs, params=params, macs=macs, ratio=ratio, min_rank=min_rank, basis=basis
    )
    for name, rank in plan.ranks.items():
        if rank is not None:
            u, s, v = basis.factors[name]
            first = (s[:rank, None] * v[:, :rank].mT).contiguous()
            factorize_layer(small, name, rank, factors=(u[:, :rank].contiguous(), first))
    if batches is not None:
        recalibrate_batchnorm(small, batches, bn_batches, input_key)
    return small
