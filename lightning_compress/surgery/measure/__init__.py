"""Measuring a model: parameters and MACs, the size after removals, neuron reports, split speed-ups."""

from lightning_compress.surgery.measure.budget import SizeModel
from lightning_compress.surgery.measure.effective import effective_size, group_cost_weights, group_costs
from lightning_compress.surgery.measure.latency import Latency, architecture_key, measure_latency
from lightning_compress.surgery.measure.report import format_neuron_report, layer_widths, neuron_report
from lightning_compress.surgery.measure.size import (
    MAC_COUNTERS,
    MacCounter,
    count_params_and_macs,
    layer_counts,
)
from lightning_compress.surgery.measure.sizes import SizePlan, plan_size, recalibrate_batchnorm, set_size
from lightning_compress.surgery.measure.speed import split_speedups

__all__ = [
    "MAC_COUNTERS",
    "Latency",
    "MacCounter",
    "SizeModel",
    "SizePlan",
    "architecture_key",
    "count_params_and_macs",
    "effective_size",
    "format_neuron_report",
    "group_cost_weights",
    "group_costs",
    "layer_counts",
    "layer_widths",
    "measure_latency",
    "neuron_report",
    "plan_size",
    "recalibrate_batchnorm",
    "set_size",
    "split_speedups",
]
