"""Shape changes of a model: removing groups, factorizing layers, rebinding optimizers, replaying history."""

from lightning_compress.surgery.compact import (
    compress_zero_groups,
    effective_size,
    group_cost_weights,
    group_costs,
    group_norms,
    removable_groups,
)
from lightning_compress.surgery.groups import (
    GROUP_MODES,
    NeuronGroups,
    build_dependency_graph,
    find_groups,
    kept_modes,
)
from lightning_compress.surgery.history import (
    append_history,
    apply_history,
    enable_history_restore,
    get_history,
    register_replay,
)
from lightning_compress.surgery.inputs import INPUTS_SUFFIX, InputSelectLinear, input_groups, remove_inputs
from lightning_compress.surgery.optimizer import rebind_optimizer
from lightning_compress.surgery.prune import remove_groups
from lightning_compress.surgery.report import format_neuron_report, layer_widths, neuron_report

__all__ = [
    "GROUP_MODES",
    "INPUTS_SUFFIX",
    "InputSelectLinear",
    "NeuronGroups",
    "append_history",
    "apply_history",
    "apply_removals",
    "build_dependency_graph",
    "compress_zero_groups",
    "effective_size",
    "enable_history_restore",
    "find_groups",
    "format_neuron_report",
    "get_history",
    "group_cost_weights",
    "group_costs",
    "group_norms",
    "input_groups",
    "kept_modes",
    "layer_widths",
    "neuron_report",
    "rebind_optimizer",
    "register_replay",
    "removable_groups",
    "remove_groups",
    "remove_inputs",
]
