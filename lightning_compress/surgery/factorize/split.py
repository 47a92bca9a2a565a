"""Split a layer into two thin layers (Alvarez & Salzmann 2017): the ``factorize`` history record.

A ``Linear(in, out)`` of rank ``r`` becomes ``Sequential(Linear(in, r, bias=False), Linear(r, out))``; a
``Conv2d(in, out, k)`` becomes ``Sequential(Conv2d(in, r, k, stride, padding, dilation, bias=False),
Conv2d(r, out, 1))``; a Hugging Face ``Conv1D`` (a Linear stored ``(in, out)``) becomes a Linear pair. The
pair stays under the old layer's name and is plain PyTorch. Grouped and
transposed convolutions are not factorized (an error says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from lightning_compress.functional.low_rank import truncated_svd
from lightning_compress.surgery.base import is_conv1d
from lightning_compress.surgery.base.records import append_history
from lightning_compress.surgery.removal import InputSelectLinear, StateFn, fresh_state, rebind_optimizer

__all__ = ["factorize_layer", "factorized", "replay_factorize"]


def _check(layer: nn.Module, name: str) -> nn.Linear | nn.Conv2d:
    if is_conv1d(layer):  # GPT-2's Conv1D: the Linear it is, its weight stored (in, out)
        weight = cast(torch.Tensor, layer.weight)
        bias = cast("torch.Tensor | None", layer.bias)
        linear = nn.Linear(weight.shape[0], weight.shape[1], bias=bias is not None)
        linear.weight = nn.Parameter(weight.detach().T.clone(), requires_grad=False)
        if bias is not None:
            linear.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
        return linear.train(layer.training)
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1 or layer.transposed:
            raise ValueError(f"layer {name!r}: grouped and transposed convolutions cannot be factorized")
        return layer
    if isinstance(layer, nn.Linear):
        return layer
    raise ValueError(
        f"layer {name!r} is {type(layer).__name__}: only Linear and Conv2d layers can be factorized"
    )


@torch.no_grad()
def factorized(
    layer: nn.Linear | nn.Conv2d,
    rank: int,
    *,
    factors: tuple[torch.Tensor, torch.Tensor] | None = None,
    bias: torch.Tensor | None = None,
) -> nn.Sequential:
    """The two thin layers that replace ``layer`` at ``rank`` (its truncated SVD; exact at full rank).

    ``factors`` ``(A, B)`` (``out x rank`` and ``rank x fan_in``, e.g. from
    :func:`~lightning_compress.functional.dalr_factors`) replace the SVD; ``bias`` replaces the layer's
    bias on the second layer.

    Example:
        >>> layer = nn.Linear(6, 4); pair = factorized(layer, 4); x = torch.randn(3, 6)
        >>> pair, torch.allclose(pair(x), layer(x), atol=1e-5)
        (Sequential(
          (0): Linear(in_features=6, out_features=4, bias=False)
          (1): Linear(in_features=4, out_features=4, bias=True)
        ), True)
    """
    _check(layer, type(layer).__name__)
    if factors is None:
        a, b = truncated_svd(layer.weight, rank)  # W ~ a @ b, a: out x r, b: r x fan_in
    else:
        a, b = factors
        out, fan_in = layer.weight.shape[0], layer.weight[0].numel()
        if a.shape != (out, rank) or b.shape != (rank, fan_in):
            raise ValueError(
                f"factors must be {out} x {rank} and {rank} x {fan_in}, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
    has_bias = layer.bias is not None
    if bias is not None and not has_bias:
        raise ValueError("the layer has no bias to replace")
    first: nn.Module
    second: nn.Module
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        first = nn.Conv2d(
            layer.in_channels,
            rank,
            (kh, kw),
            stride=cast(tuple[int, int], layer.stride),
            padding=cast("str | tuple[int, int]", layer.padding),
            dilation=cast(tuple[int, int], layer.dilation),
            bias=False,
            padding_mode=layer.padding_mode,
        )
        second = nn.Conv2d(rank, layer.out_channels, 1, bias=has_bias)
        first.weight.copy_(b.reshape(first.weight.shape))
        second.weight.copy_(a.reshape(second.weight.shape))
    else:
        first = (
            InputSelectLinear(layer.in_features, rank, layer.get_buffer("input_index"), bias=False)
            if isinstance(layer, InputSelectLinear)  # pixels removed earlier: keep selecting them
            else nn.Linear(layer.in_features, rank, bias=False)
        )
        second = nn.Linear(rank, layer.out_features, bias=has_bias)
        first.weight.copy_(b)
        second.weight.copy_(a)
    new_bias = bias if bias is not None else layer.bias
    if new_bias is not None and second.bias is not None:
        second.bias.copy_(new_bias)
    pair = nn.Sequential(first, second).to(device=layer.weight.device, dtype=layer.weight.dtype)
    return pair.train(layer.training)


def _carry(key: str, value: torch.Tensor, old: nn.Parameter, new: nn.Parameter) -> torch.Tensor:
    return value.clone()


def factorize_layer(
    model: nn.Module,
    name: str,
    rank: int,
    *,
    optimizers: Sequence[torch.optim.Optimizer] = (),
    factors: tuple[torch.Tensor, torch.Tensor] | None = None,
    bias: torch.Tensor | None = None,
) -> list[dict[str, Any]]:
    """Replace layer ``name`` by its rank-``rank`` pair, rebind ``optimizers``, and record it.

    ``factors`` and ``bias`` are passed to :func:`factorized` (default: the truncated SVD).

    In the optimizers the two factors take the old weight's place in its param group with fresh state
    (momentum and moments of the dense weight do not project onto the factors exactly); the bias keeps
    its state.

    Example:
        >>> model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> factorize_layer(model, "0", 2)
        [{'kind': 'factorize', 'module': '0', 'rank': 2}]
        >>> model[0][0].weight.shape, model[0][1].weight.shape
        (torch.Size([2, 6]), torch.Size([4, 2]))
    """
    original = model.get_submodule(name)
    layer = _check(original, name)
    pair = factorized(layer, rank, factors=factors, bias=bias)
    model.set_submodule(name, pair)
    first, second = cast(nn.Linear, pair[0]), cast(nn.Linear, pair[1])  # or both Conv2d
    weight = cast(nn.Parameter, original.weight)
    replaced: dict[nn.Parameter, list[tuple[nn.Parameter, StateFn]]] = {
        weight: [
            (cast(nn.Parameter, first.weight), fresh_state),
            (cast(nn.Parameter, second.weight), fresh_state),
        ]
    }
    old_bias, new_bias = cast("nn.Parameter | None", original.bias), second.bias
    if old_bias is not None and new_bias is not None:
        replaced[old_bias] = [(new_bias, _carry)]
    for optimizer in optimizers:
        rebind_optimizer(optimizer, replaced)
    record = {"kind": "factorize", "module": name, "rank": int(rank)}
    append_history(model, [record])
    return [record]


def replay_factorize(model: nn.Module, record: dict[str, Any], example_inputs: Any) -> None:
    """Replay a ``{"kind": "factorize", "module": NAME, "rank": R}`` record (shapes; weights load after)."""
    name = record["module"]
    layer = _check(model.get_submodule(name), name)
    model.set_submodule(name, factorized(layer, int(record["rank"])))
