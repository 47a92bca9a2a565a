"""Parameter and MAC counts of a model, through Torch-Pruning's op counter."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from lightning_compress.surgery.removal import (
    InputSelectLinear,
    PrunedLayerNorm,
    PrunedLayerNorm2d,
    PrunedMultiheadAttention,
    count_attention_macs,
    count_input_select_macs,
    count_layer_norm_macs,
)

__all__ = ["MAC_COUNTERS", "MacCounter", "count_params_and_macs", "layer_counts"]

MacCounter = Callable[[nn.Module, tuple[Any, ...], Any], None]
"""A forward hook that adds a module's MACs to ``module.__flops__`` (Torch-Pruning's counter protocol)."""

MAC_COUNTERS: Mapping[type[nn.Module], MacCounter] = MappingProxyType(
    {
        InputSelectLinear: count_input_select_macs,
        PrunedMultiheadAttention: count_attention_macs,
        PrunedLayerNorm: count_layer_norm_macs,
        PrunedLayerNorm2d: count_layer_norm_macs,
    }
)
"""MAC counters of the layer types surgery creates, which Torch-Pruning's counter does not know."""


def count_timm_attention_macs(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
    """MACs of a timm ``Attention`` as Torch-Pruning counts them (projections, scaling, scores, softmax,
    weighted sum), with its projections counted from the ``Linear`` layers it holds: a ``qkv`` or ``proj``
    split in two (or pruned) is counted as it is."""
    x = inputs[0]
    batch, tokens = int(x.shape[0]), int(x.shape[1])
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    projections = sum(
        m.in_features * m.out_features + (m.out_features if m.bias is not None else 0) for m in linears
    )
    qkv = [m for m in module.get_submodule("qkv").modules() if isinstance(m, nn.Linear)][-1]
    dim = qkv.out_features // 3
    heads: Any = module.num_heads
    head_dim = dim // int(heads)
    scores = int(heads) * (2 * tokens * tokens * head_dim + tokens * tokens)
    total = batch * (tokens * projections + tokens * dim + scores)
    flops: Any = getattr(module, "__flops__", 0)
    setattr(module, "__flops__", int(flops) + total)  # noqa: B010


def count_params_and_macs(model: nn.Module, example_inputs: Any) -> tuple[int, int]:
    """Count a model's parameters and multiply-accumulates for one forward pass.

    The count is taken on a copy, so the model's mode and hooks are left alone. Layers that surgery
    creates are counted by :data:`MAC_COUNTERS`.

    Args:
        model: Any module Torch-Pruning can trace.
        example_inputs: A tensor (or tuple of tensors) of the input's shape; a batch of 1 gives MACs per
            sample.

    Returns:
        ``(params, macs)``.

    Example:
        >>> count_params_and_macs(nn.Linear(784, 300), torch.zeros(1, 784))
        (235500, 235500)
    """
    params, macs, _ = layer_counts(model, example_inputs)
    return params, macs


def layer_counts(model: nn.Module, example_inputs: Any) -> tuple[int, int, dict[nn.Module, int]]:
    """:func:`count_params_and_macs` and the MACs of each module that has its own parameters.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> params, macs, per_module = layer_counts(model, torch.zeros(1, 4))
        >>> params, [per_module[model[0]], per_module[model[2]]]
        (23, [15, 8])
    """
    counter = tp.utils.op_counter
    # Torch-Pruning's per-call hook for module types it does not know: it reads this attribute during the
    # call and clears it afterwards; it is set here for the call only and left as found
    previous = counter.CUSTOM_MODULES_MAPPING
    counter.CUSTOM_MODULES_MAPPING = dict(MAC_COUNTERS)
    timm_vit = sys.modules.get("timm.models.vision_transformer")
    if timm_vit is not None and hasattr(timm_vit, "Attention"):  # also once its projections are split
        counter.CUSTOM_MODULES_MAPPING[timm_vit.Attention] = count_timm_attention_macs
    try:
        with torch.no_grad():
            macs, params, layer_macs, _ = tp.utils.count_ops_and_params(
                model, example_inputs, layer_wise=True
            )
    finally:
        counter.CUSTOM_MODULES_MAPPING = previous
    own = {}  # a container's count holds its children's: each module keeps what its children do not
    for module, value in layer_macs.items():
        if next(module.parameters(recurse=False), None) is not None:
            children = sum(int(layer_macs.get(child) or 0) for child in module.children())
            own[module] = max(int(value or 0) - children, 0)
    return int(params), int(macs), own
