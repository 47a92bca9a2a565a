"""The one table of surgery record kinds and of MAC counters for the layers surgery creates.

A new kind of shape change (layer factorization, a rank change) adds its replay function here and, if it
introduces a layer type Torch-Pruning cannot count, its MAC counter. Nothing registers itself on import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from torch import nn

from lightning_compress.surgery.factorize import replay_factorize
from lightning_compress.surgery.heads import (
    PrunedMultiheadAttention,
    count_attention_macs,
    replay_prune_heads,
)
from lightning_compress.surgery.inputs import (
    InputSelectLinear,
    count_input_select_macs,
    replay_select_inputs,
)
from lightning_compress.surgery.prune import replay_prune
from lightning_compress.surgery.width import (
    PrunedLayerNorm,
    count_layer_norm_macs,
    replay_prune_width,
)

__all__ = ["MAC_COUNTERS", "RECORD_KINDS", "MacCounter", "Replay"]

Replay = Callable[[nn.Module, dict[str, Any], Any], None]
"""``replay(model, record, example_inputs)``: apply one history record's shape change to ``model``."""

MacCounter = Callable[[nn.Module, tuple[Any, ...], Any], None]
"""A forward hook that adds a module's MACs to ``module.__flops__`` (Torch-Pruning's counter protocol)."""

RECORD_KINDS: Mapping[str, Replay] = MappingProxyType(
    {
        "prune": replay_prune,
        "select_inputs": replay_select_inputs,
        "factorize": replay_factorize,
        "prune_heads": replay_prune_heads,
        "prune_width": replay_prune_width,
    }
)

MAC_COUNTERS: Mapping[type[nn.Module], MacCounter] = MappingProxyType(
    {
        InputSelectLinear: count_input_select_macs,
        PrunedMultiheadAttention: count_attention_macs,
        PrunedLayerNorm: count_layer_norm_macs,
    }
)
