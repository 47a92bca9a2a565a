"""Shape changes of a model: find groups, remove them, replay the history, rebind optimizers, count size.

Every shape change is a plain record in the model's compression history; the kinds of record and the
MAC counters of the layers surgery creates are listed in one table, :mod:`lightning_compress.surgery.registry`.
"""

from lightning_compress.surgery.activations import (
    InputStatistics,
    capture_inputs,
    input_statistics,
    layer_input_rows,
)
from lightning_compress.surgery.attention import find_hand_attention
from lightning_compress.surgery.calibrated import (
    CalibrationOrder,
    LayerResult,
    LowRankMethod,
    compress_low_rank,
    low_rank_layers,
)
from lightning_compress.surgery.compact import (
    apply_removals,
    compress_zero_groups,
    effective_size,
    group_cost_weights,
    group_costs,
    group_norms,
    plan_removals,
    removable_groups,
)
from lightning_compress.surgery.example import (
    BATCH_INPUT_KEYS,
    INPUTS_ATTRIBUTE,
    batch_input,
    example_from_spec,
    store_example,
)
from lightning_compress.surgery.export import Normalize, export_model
from lightning_compress.surgery.factorize import factorize_layer, factorized, is_factorized
from lightning_compress.surgery.groups import (
    GROUP_MODES,
    GroupMode,
    LayerSelector,
    NeuronGroups,
    build_dependency_graph,
    find_groups,
    kept_modes,
)
from lightning_compress.surgery.heads import (
    HEADS_SUFFIX,
    PrunedMultiheadAttention,
    count_attention_macs,
    head_groups,
    remove_heads,
)
from lightning_compress.surgery.history import append_history, get_history, history_version
from lightning_compress.surgery.inputs import INPUTS_SUFFIX, InputSelectLinear, input_groups, remove_inputs
from lightning_compress.surgery.layer_kinds import NotGroupable, channel_blocks, is_depthwise, param_specs
from lightning_compress.surgery.optimizer import fresh_state, rebind_by_name, rebind_optimizer, slice_state
from lightning_compress.surgery.prune import remove_groups
from lightning_compress.surgery.rank_rules import RANK_RULES, RankRule, check_ridge
from lightning_compress.surgery.registry import MAC_COUNTERS, RECORD_KINDS
from lightning_compress.surgery.replay import apply_history, enable_history_restore, load_compressed
from lightning_compress.surgery.report import format_neuron_report, layer_widths, neuron_report
from lightning_compress.surgery.selectors import check_selectors
from lightning_compress.surgery.size import count_params_and_macs
from lightning_compress.surgery.speed import split_speedups
from lightning_compress.surgery.width import (
    PrunedLayerNorm,
    count_layer_norm_macs,
    is_width_family,
    remove_width,
)

__all__ = [
    "BATCH_INPUT_KEYS",
    "GROUP_MODES",
    "HEADS_SUFFIX",
    "INPUTS_ATTRIBUTE",
    "INPUTS_SUFFIX",
    "MAC_COUNTERS",
    "RANK_RULES",
    "RECORD_KINDS",
    "CalibrationOrder",
    "GroupMode",
    "InputSelectLinear",
    "InputStatistics",
    "LayerResult",
    "LayerSelector",
    "LowRankMethod",
    "NeuronGroups",
    "Normalize",
    "NotGroupable",
    "PrunedLayerNorm",
    "PrunedMultiheadAttention",
    "RankRule",
    "append_history",
    "apply_history",
    "apply_removals",
    "batch_input",
    "build_dependency_graph",
    "capture_inputs",
    "channel_blocks",
    "check_ridge",
    "check_selectors",
    "compress_low_rank",
    "compress_zero_groups",
    "count_attention_macs",
    "count_layer_norm_macs",
    "count_params_and_macs",
    "effective_size",
    "enable_history_restore",
    "example_from_spec",
    "export_model",
    "factorize_layer",
    "factorized",
    "find_groups",
    "find_hand_attention",
    "format_neuron_report",
    "fresh_state",
    "get_history",
    "group_cost_weights",
    "group_costs",
    "group_norms",
    "head_groups",
    "history_version",
    "input_groups",
    "input_statistics",
    "is_depthwise",
    "is_factorized",
    "is_width_family",
    "kept_modes",
    "layer_input_rows",
    "layer_widths",
    "load_compressed",
    "low_rank_layers",
    "neuron_report",
    "param_specs",
    "plan_removals",
    "rebind_by_name",
    "rebind_optimizer",
    "removable_groups",
    "remove_groups",
    "remove_heads",
    "remove_inputs",
    "remove_width",
    "slice_state",
    "split_speedups",
    "store_example",
]
