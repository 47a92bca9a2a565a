"""The one table of surgery record kinds: each kind's replay function.

A new kind of shape change (layer factorization, a rank change) adds its replay function here (and, if it
introduces a layer type Torch-Pruning cannot count, a MAC counter in
:data:`~lightning_compress.surgery.measure.size.MAC_COUNTERS`). Nothing registers itself on import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from torch import nn

from lightning_compress.surgery.factorize import replay_factorize
from lightning_compress.surgery.removal import (
    replay_prune,
    replay_prune_heads,
    replay_prune_width,
    replay_select_inputs,
)

__all__ = ["RECORD_KINDS", "Replay"]

Replay = Callable[[nn.Module, dict[str, Any], Any], None]
"""``replay(model, record, example_inputs)``: apply one history record's shape change to ``model``."""

RECORD_KINDS: Mapping[str, Replay] = MappingProxyType(
    {
        "prune": replay_prune,
        "select_inputs": replay_select_inputs,
        "factorize": replay_factorize,
        "prune_heads": replay_prune_heads,
        "prune_width": replay_prune_width,
    }
)
