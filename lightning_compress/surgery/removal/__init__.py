"""Removing groups: slicing layers, input features, heads and residual width; the optimizer rebound."""

from lightning_compress.surgery.removal.compact import (
    apply_removals,
    compress_zero_groups,
    group_norms,
    plan_removals,
    removable_groups,
)
from lightning_compress.surgery.removal.heads import (
    PrunedMultiheadAttention,
    count_attention_macs,
    remove_heads,
    replay_prune_heads,
)
from lightning_compress.surgery.removal.inputs import (
    INPUTS_SUFFIX,
    InputSelectLinear,
    count_input_select_macs,
    input_groups,
    remove_inputs,
    replay_select_inputs,
)
from lightning_compress.surgery.removal.optimizer import (
    StateFn,
    fresh_state,
    rebind_by_name,
    rebind_optimizer,
    slice_state,
)
from lightning_compress.surgery.removal.prune import remove_groups, replay_prune
from lightning_compress.surgery.removal.width import (
    PrunedLayerNorm,
    PrunedLayerNorm2d,
    count_layer_norm_macs,
    is_width_family,
    remove_width,
    replay_prune_width,
)

__all__ = [
    "INPUTS_SUFFIX",
    "InputSelectLinear",
    "PrunedLayerNorm",
    "PrunedLayerNorm2d",
    "PrunedMultiheadAttention",
    "StateFn",
    "apply_removals",
    "compress_zero_groups",
    "count_attention_macs",
    "count_input_select_macs",
    "count_layer_norm_macs",
    "fresh_state",
    "group_norms",
    "input_groups",
    "is_width_family",
    "plan_removals",
    "rebind_by_name",
    "rebind_optimizer",
    "removable_groups",
    "remove_groups",
    "remove_heads",
    "remove_inputs",
    "remove_width",
    "replay_prune",
    "replay_prune_heads",
    "replay_prune_width",
    "replay_select_inputs",
    "slice_state",
]
