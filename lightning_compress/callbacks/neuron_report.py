"""Log how many neurons are (near) zero, per layer: the implicit sparsity of Adam + L2 + ReLU training."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from lightning_compress._checks import check_int, check_nonneg
from lightning_compress.callbacks._common import TracingCallback, check_input_key, example_inputs
from lightning_compress.surgery.measure.report import format_neuron_report, neuron_report

__all__ = ["NeuronReport"]


class NeuronReport(TracingCallback):
    """Every N epochs, log ``neurons/near_zero``, ``neurons/zero`` and per-layer near-zero counts; print a
    table when fit ends.

    A neuron is near zero when the norm of its incoming group is at most ``relative_threshold`` times the
    largest in its layer. Yaguchi et al. (2018) observe many such neurons after Adam with L2 on ReLU nets;
    :class:`StructuredPruning` with the same ``relative_threshold`` removes them.

    Args:
        relative_threshold: Near zero: a group norm at most this times the largest of its layer.
        every_n_epochs: Report every N epochs (and at fit end).
        input_key: As for :class:`StructuredPruning`.
        example_input: As for :class:`StructuredPruning`.

    Example:
        >>> NeuronReport(relative_threshold=1e-3).relative_threshold
        0.001
    """

    def __init__(
        self,
        relative_threshold: float = 1e-3,
        every_n_epochs: int = 1,
        input_key: str | None = None,
        example_input: Any = None,
    ) -> None:
        self.example_input = example_input
        self.batch_key = check_input_key(input_key)
        check_nonneg(relative_threshold, "relative_threshold")
        check_int(every_n_epochs, "every_n_epochs", 1)
        self.relative_threshold = relative_threshold
        self.every_n_epochs = every_n_epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        rows = neuron_report(pl_module, example_inputs(pl_module), relative_threshold=self.relative_threshold)
        pl_module.log("neurons/near_zero", float(sum(r["near_zero"] for r in rows)))
        pl_module.log("neurons/zero", float(sum(r["zero"] for r in rows)))
        for r in rows:
            pl_module.log(f"neurons/near_zero/{r['layer']}", float(r["near_zero"]))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rows = neuron_report(pl_module, example_inputs(pl_module), relative_threshold=self.relative_threshold)
        table = format_neuron_report(rows)
        rank_zero_info(f"Neuron report (relative threshold {self.relative_threshold:g}):\n{table}")
