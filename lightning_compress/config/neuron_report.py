"""The ``compression.neuron_report`` section: :class:`~lightning_compress.callbacks.NeuronReport`."""

from __future__ import annotations

from dataclasses import dataclass

from lightning.pytorch.callbacks import Callback

from lightning_compress.callbacks import NeuronReport
from lightning_compress.config._plain import plain

__all__ = ["NeuronReportConfig", "build_neuron_report"]


@dataclass
class NeuronReportConfig:
    """:class:`~lightning_compress.callbacks.NeuronReport` arguments.

    Example:
        >>> NeuronReportConfig().relative_threshold
        0.001
    """

    relative_threshold: float = 1e-3
    every_n_epochs: int = 1


def build_neuron_report(cfg: NeuronReportConfig) -> list[Callback]:
    """The section's callback.

    Example:
        >>> build_neuron_report(NeuronReportConfig(every_n_epochs=2))[0].every_n_epochs
        2
    """
    return [NeuronReport(**plain(cfg))]
