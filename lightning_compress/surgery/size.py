"""Parameter and MAC counts of a model, through Torch-Pruning's op counter."""

from __future__ import annotations

from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from lightning_compress.surgery.registry import MAC_COUNTERS

__all__ = ["count_params_and_macs"]


def count_params_and_macs(model: nn.Module, example_inputs: Any) -> tuple[int, int]:
    """Count a model's parameters and multiply-accumulates for one forward pass.

    The count is taken on a copy, so the model's mode and hooks are left alone. Layers that surgery
    creates are counted by :data:`~lightning_compress.surgery.registry.MAC_COUNTERS`.

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
    counter = tp.utils.op_counter
    # Torch-Pruning's per-call hook for module types it does not know: it reads this attribute during the
    # call and clears it afterwards; it is set here for the call only and left as found
    previous = counter.CUSTOM_MODULES_MAPPING
    counter.CUSTOM_MODULES_MAPPING = dict(MAC_COUNTERS)
    try:
        with torch.no_grad():
            macs, params = tp.utils.count_ops_and_params(model, example_inputs)
    finally:
        counter.CUSTOM_MODULES_MAPPING = previous
    return int(params), int(macs)
