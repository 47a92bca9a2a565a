"""Compress trained layers to low rank on data: DALR, truncated SVD, SVD with bias compensation.

:func:`compress_low_rank` reads the chosen layers' input statistics over a (target-domain) data loader,
picks ranks (per layer, or for all layers under one parameter or MAC budget), and replaces each layer
by two thin layers with a ``factorize`` record, so that resume, ``weights_only`` loading and export work
as for any other shape change.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

import torch
from torch import nn

from lightning_compress._checks import ArgumentError, check_choice
from lightning_compress.functional import (
    LayerSpectrum,
    allocate_ranks,
    as_matrix,
    bias_compensation,
    choose_rank,
    dalr_factors,
    output_error,
    output_spectrum,
    truncated_svd,
)
from lightning_compress.surgery.base import is_conv1d, model_input
from lightning_compress.surgery.base.activations import InputStatistics, input_statistics, paired_statistics
from lightning_compress.surgery.factorize.layers import low_rank_layers
from lightning_compress.surgery.factorize.rank_rules import (
    CalibrationOrder,
    CalibrationOrderName,
    LayerResult,
    LowRankMethod,
    LowRankMethodName,
    RankRule,
    check_budget,
    check_ridge,
)
from lightning_compress.surgery.factorize.split import factorize_layer
from lightning_compress.surgery.groups import LayerSelector

__all__ = [
    "CalibrationOrder",
    "LayerResult",
    "LowRankMethod",
    "compress_low_rank",
    "low_rank_layers",
]


_DALR = (LowRankMethod.dalr, LowRankMethod.dalr_bias)


def _weight(model: nn.Module, name: str) -> torch.Tensor:
    """The layer's weight as ``(out, in...)`` (a ``Conv1D``'s is stored transposed)."""
    layer = model.get_submodule(name)
    return cast(torch.Tensor, layer.weight).T if is_conv1d(layer) else cast(torch.Tensor, layer.weight)


def _statistics(
    model: nn.Module, names: Sequence[str], method: LowRankMethod, ridge: float, load: Callable[..., Any]
) -> dict[str, InputStatistics]:
    if method is LowRankMethod.svd_bias:
        return load(model, names, second_moments=False)  # only the mean
    through = {}
    for name in names:  # Z Z^T (m x m) is enough and smaller than X X^T when m < n and ridge == 0
        w = as_matrix(_weight(model, name)).detach()
        if method in _DALR and ridge == 0 and w.shape[0] < w.shape[1]:
            through[name] = w
    return load(model, names, through=through)


def _moments(weight: torch.Tensor, stats: InputStatistics, centered: bool) -> dict[str, torch.Tensor]:
    """DALR's moments: ``zzt`` (when streamed through ``W``) or ``xxt``; centered for ``dalr_bias``."""
    if stats.through is not None:
        if not centered:
            return {"zzt": stats.xxt}
        zm = stats.through @ stats.mean
        return {"zzt": stats.xxt / max(stats.count, 1) - torch.outer(zm, zm)}
    if not centered:
        return {"xxt": stats.xxt}
    return {"xxt": stats.xxt / max(stats.count, 1) - torch.outer(stats.mean, stats.mean)}


def _errors(weight: torch.Tensor, stats: InputStatistics | None, method: LowRankMethod) -> torch.Tensor:
    """The error each rank removes: output energies (DALR) or squared singular values of ``W`` (SVD)."""
    w = as_matrix(weight).detach().double()
    if stats is None or not stats.xxt.numel() or method not in _DALR:
        return torch.linalg.svdvals(w).square()
    moments = _moments(weight, stats, method is LowRankMethod.dalr_bias)
    zzt = moments["zzt"] if "zzt" in moments else w @ moments["xxt"] @ w.T
    return output_spectrum(zzt)[0][: min(w.shape)]


def _first_input(batches: Any, to_inputs: Callable[[Any], Any] | None) -> Any:
    with torch.random.fork_rng(devices=[]):  # a shuffling loader draws its order: the run's own draws stay
        batch = next(iter(batches), None)
    return None if batch is None else to_inputs(batch) if to_inputs else model_input(batch)


def compress_low_rank(
    model: nn.Module,
    batches: Iterable[Any] | None,
    *,
    method: LowRankMethod | LowRankMethodName = LowRankMethod.dalr,
    include: Sequence[LayerSelector] | None = None,
    exclude: Sequence[LayerSelector] = (),
    rank: int | None = None,
    energy: float | None = None,
    param_ratio: float | None = None,
    params: float | None = None,
    macs: float | None = None,
    ridge: float = 0.0,
    order: CalibrationOrder | CalibrationOrderName = CalibrationOrder.original,
    to_inputs: Callable[[Any], Any] | None = None,
    max_batches: int | None = None,
    optimizers: Sequence[torch.optim.Optimizer] = (),
    progress: bool = False,
    decide: Callable[[dict[str, int | None]], dict[str, int | None]] | None = None,
) -> list[LayerResult]:
    """Split the chosen layers of ``model`` into rank-``k`` pairs fitted on ``batches``.

    Give one rank rule: ``rank``, ``energy`` (share of the output energy, or of the squared singular
    values for SVD), ``param_ratio`` (per layer: the pair holds at most this share of the layer's
    weights) or ``params`` (all layers together: a share <= 1 of their weights, or a count; ranks are
    allocated by :func:`~lightning_compress.functional.allocate_ranks`). Layers whose rank would not save
    parameters stay dense.

    Args:
        model: The trained network; changed in place.
        batches: Target-domain data loader (any iterable of batches); ``None`` only for ``"svd"``.
        method: ``"dalr"``, ``"dalr_bias"`` (DALR on centered inputs, bias compensated), ``"svd"`` or
            ``"svd_bias"``.
        include: Layers to compress (see :func:`low_rank_layers`).
        exclude: Layers never compressed.
        rank: The same rank for every layer (capped at ``min(m, n)``).
        energy: In (0, 1].
        param_ratio: In (0, 1].
        params: The budget for all layers.
        macs: Instead, a budget of their multiply-accumulates per sample (a share <= 1 or a count; the
            positions a conv is applied at are counted on the calibration data).
        ridge: DALR's ridge, relative to the mean input energy.
        order: ``"original"``, ``"sequential"`` (one pass over ``batches`` per layer) or ``"corrected"``
            (sequential, each layer fitted to the original network's outputs of it; DALR only).
        to_inputs: Batch -> model input (default: the batch, or its first item).
        max_batches: Use at most this many batches per pass.
        optimizers: Rebound to the new parameters.
        progress: Progress bars over the batches.
        decide: Called with the chosen ranks (name -> rank, ``None`` for dense); its result is used
            instead (under DDP: rank 0's choice broadcast, so every process splits alike).

    Example:
        >>> _ = torch.manual_seed(0); model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 2))
        >>> data = [torch.randn(64, 20) for _ in range(4)]
        >>> [(r.name, r.rank, r.params_after) for r in compress_low_rank(model, data, rank=3)]
        [('0', 3, 108)]
    """
    method = check_choice(LowRankMethod, method, "method")
    order = check_choice(CalibrationOrder, order, "order")
    RankRule(params=params, macs=macs, rank=rank, energy=energy, param_ratio=param_ratio)
    check_ridge(ridge)
    reusable = batches is not None and not isinstance(batches, Iterator)  # a loader, not a one-pass iterator
    example = _first_input(batches, to_inputs) if reusable else None
    names = low_rank_layers(model, include, exclude, example)
    shapes = {n: cast(tuple[int, int], tuple(as_matrix(_weight(model, n)).shape)) for n in names}
    budget = check_budget(params, "params", sum(m * n for m, n in shapes.values()))
    if batches is None and method is not LowRankMethod.svd:
        raise ArgumentError("batches", f"method {method.value!r} needs calibration data")

    def load(net: nn.Module, layer_names: Sequence[str], **kwargs: Any) -> dict[str, InputStatistics]:
        assert batches is not None
        found = input_statistics(
            net,
            layer_names,
            batches,
            to_inputs=to_inputs,
            max_batches=max_batches,
            progress=progress,
            **kwargs,
        )
        if not any(s.count for s in found.values()):
            raise ArgumentError("batches", "the calibration data loader yielded no batch")
        return found

    stats = {} if batches is None else _statistics(model, names, method, ridge, load)
    spectra = {n: _errors(_weight(model, n), stats.get(n), method) for n in names}
    chosen: dict[str, int | None]
    units = dict.fromkeys(names, 1.0)
    if macs is not None:  # a conv's MACs are its parameters times the positions it is applied at
        if not stats:
            raise ArgumentError("macs", "a MAC budget needs calibration data (it counts conv positions)")
        units = {n: stats[n].count / max(stats[n].samples, 1) for n in names}
        budget = check_budget(macs, "macs", sum(m * k * units[n] for n, (m, k) in shapes.items()))
    if budget is not None:
        chosen = allocate_ranks({n: LayerSpectrum(spectra[n], shapes[n], units[n]) for n in names}, budget)
    else:
        chosen = {}
        for n in names:
            m, k = shapes[n]
            if rank is not None and rank > min(m, k):
                raise ArgumentError("rank", f"rank={rank} is above min(m, n) = {min(m, k)} of layer {n!r}")
            r = choose_rank(
                spectra[n].sqrt(), rank=rank, energy=energy, param_ratio=param_ratio, shape=(m, k)
            )
            chosen[n] = r if r * (m + k) < m * k else None
    if decide is not None:
        chosen = decide(chosen)
    reference = copy.deepcopy(model) if order is CalibrationOrder.corrected else None
    results = []
    for i, n in enumerate(names):
        (m, k), chosen_rank = shapes[n], chosen[n]
        if chosen_rank is None:
            results.append(LayerResult(n, (m, k), None, m * k, m * k, 0.0 if stats else None))
            continue
        r = chosen_rank
        layer_stats = stats.get(n)
        later = order is not CalibrationOrder.original and method is not LowRankMethod.svd and i > 0
        if later and order is CalibrationOrder.corrected and method is LowRankMethod.dalr:
            assert batches is not None and reference is not None
            layer_stats, cross = paired_statistics(
                reference, model, n, batches, to_inputs=to_inputs, max_batches=max_batches
            )
            a, b = dalr_factors(_weight(model, n).detach(), r, xxt=layer_stats.xxt, cross=cross, ridge=ridge)
            bias, error = None, None
        else:
            if later:  # the inputs the compressed layers before it produce
                layer_stats = _statistics(model, [n], method, ridge, load)[n]
            values = spectra[n] if not later and method in _DALR else None  # known: no second eigh
            a, b, bias, error = _solve(model.get_submodule(n), r, method, layer_stats, ridge, values)
        factorize_layer(model, n, r, optimizers=optimizers, factors=(a, b), bias=bias)
        results.append(LayerResult(n, (m, k), r, m * k, r * (m + k), error))
    return results


def _solve(
    layer: nn.Module,
    rank: int,
    method: LowRankMethod,
    stats: InputStatistics | None,
    ridge: float,
    values: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, float | None]:
    """Factors, new bias (or ``None``) and relative output error of one layer."""
    weight = (
        cast(torch.Tensor, layer.weight).T if is_conv1d(layer) else cast(torch.Tensor, layer.weight)
    ).detach()
    layer_bias = cast("torch.Tensor | None", layer.bias)
    bias = None
    if method in _DALR:
        assert stats is not None
        centered = method is LowRankMethod.dalr_bias and layer_bias is not None
        moments = _moments(weight, stats, centered)
        a, b = dalr_factors(weight, rank, ridge=ridge, **moments)
        if centered:
            assert layer_bias is not None
            bias = bias_compensation(weight, a, b, layer_bias.detach(), stats.mean.to(weight.device))
        used = moments["zzt"] if "zzt" in moments else moments["xxt"]
        stats = InputStatistics(used, stats.sum, stats.count, through=stats.through)
    else:
        a, b = truncated_svd(weight, rank)
        if method is LowRankMethod.svd_bias and layer_bias is not None:
            assert stats is not None
            bias = bias_compensation(weight, a, b, layer_bias.detach(), stats.mean.to(weight.device))
    if stats is None or not stats.xxt.numel():
        return a, b, bias, None
    if stats.through is not None:  # DALR from Z Z^T: the error is the energy beyond rank k
        values = output_spectrum(stats.xxt)[0] if values is None else values
        return a, b, bias, float(values[rank:].sum() / values.sum().clamp_min(1e-30))
    w = as_matrix(weight).double()
    total = float(torch.trace(w @ stats.xxt @ w.T))
    return a, b, bias, output_error(weight, a, b, stats.xxt) / max(total, 1e-30)
