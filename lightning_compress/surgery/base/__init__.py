"""What every room builds on: the compression-history records, example inputs, tracing, layer inputs."""

from lightning_compress.surgery.base.activations import (
    InputStatistics,
    capture_inputs,
    input_statistics,
    layer_input_rows,
    paired_statistics,
)
from lightning_compress.surgery.base.conv1d import is_conv1d
from lightning_compress.surgery.base.example import (
    BATCH_INPUT_KEYS,
    INPUTS_ATTRIBUTE,
    batch_input,
    example_from_spec,
    model_input,
    store_example,
)
from lightning_compress.surgery.base.records import (
    HISTORY_ATTRIBUTE,
    append_history,
    decode_history,
    get_history,
    history_version,
)
from lightning_compress.surgery.base.rms import rms_norm_eps
from lightning_compress.surgery.base.tracing import build_dependency_graph, kept_modes

__all__ = [
    "BATCH_INPUT_KEYS",
    "HISTORY_ATTRIBUTE",
    "INPUTS_ATTRIBUTE",
    "InputStatistics",
    "append_history",
    "batch_input",
    "build_dependency_graph",
    "capture_inputs",
    "decode_history",
    "example_from_spec",
    "get_history",
    "history_version",
    "input_statistics",
    "is_conv1d",
    "kept_modes",
    "layer_input_rows",
    "model_input",
    "paired_statistics",
    "rms_norm_eps",
    "store_example",
]
