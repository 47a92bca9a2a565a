"""Parameter and MAC counts of a model, through Torch-Pruning's op counter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

__all__ = ["count_params_and_macs", "register_mac_counter"]

MacHook = Callable[[nn.Module, tuple[Any, ...], Any], None]
_COUNTERS: dict[type[nn.Module], MacHook] = {}


def register_mac_counter(module_type: type[nn.Module], hook: MacHook) -> None:
    """Count MACs of ``module_type`` with ``hook(module, inputs, output)``, which adds to ``module.__flops__``
    (Torch-Pruning's counter protocol; it matches module types exactly, so subclasses need this)."""
    _COUNTERS[module_type] = hook


def count_params_and_macs(model: nn.Module, example_inputs: Any) -> tuple[int, int]:
    """Count a model's parameters and multiply-accumulates for one forward pass.

    The count is taken on a copy, so the model's mode and hooks are left alone.

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
    # Torch-Pruning reads its per-call custom mapping from this module attribute and resets it afterwards
    tp.utils.op_counter.CUSTOM_MODULES_MAPPING = dict(_COUNTERS)
    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, example_inputs)
    return int(params), int(macs)
