"""What can be removed together: the dependency graph's families, layer kinds, attention heads, norms, selectors."""

from lightning_compress.surgery.groups.attention import (
    HandAttention,
    find_hand_attention,
    hand_head_groups,
    prune_hand_heads,
)
from lightning_compress.surgery.groups.core import (
    GROUP_MODES,
    GroupMode,
    GroupModeName,
    NeuronGroups,
    Slice,
    channel_families,
    without_inexact_norms,
)
from lightning_compress.surgery.groups.find import find_groups, selected
from lightning_compress.surgery.groups.heads import HEADS_SUFFIX, head_groups, head_shape
from lightning_compress.surgery.groups.layer_kinds import (
    NORMS,
    NotGroupable,
    channel_blocks,
    fit_attributes,
    is_depthwise,
    is_factorized,
    param_specs,
)
from lightning_compress.surgery.groups.norms import is_feature_norm, layers_feeding_feature_norms
from lightning_compress.surgery.groups.selectors import (
    LayerSelector,
    check_selectors,
    matches,
    resolve_selector,
    validate_selectors,
)

__all__ = [
    "GROUP_MODES",
    "HEADS_SUFFIX",
    "NORMS",
    "GroupMode",
    "GroupModeName",
    "HandAttention",
    "LayerSelector",
    "NeuronGroups",
    "NotGroupable",
    "Slice",
    "channel_blocks",
    "channel_families",
    "check_selectors",
    "find_groups",
    "find_hand_attention",
    "fit_attributes",
    "hand_head_groups",
    "head_groups",
    "head_shape",
    "is_depthwise",
    "is_factorized",
    "is_feature_norm",
    "layers_feeding_feature_norms",
    "matches",
    "param_specs",
    "prune_hand_heads",
    "resolve_selector",
    "selected",
    "validate_selectors",
    "without_inexact_norms",
]
