"""Physically remove zero (or near-zero) neurons and channels during and after training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_compress._checks import ArgumentError, check_choice, check_int, check_ints, check_nonneg
from lightning_compress.callbacks._common import TracingCallback, check_input_key, example_inputs
from lightning_compress.callbacks._shape_change import change_shape
from lightning_compress.callbacks.group_sparsity import GroupSparsity
from lightning_compress.surgery import (
    GroupMode,
    LayerSelector,
    apply_removals,
    check_selectors,
    plan_removals,
)
from lightning_compress.surgery.groups import GroupModeName

__all__ = ["StructuredPruning"]


class StructuredPruning(TracingCallback):
    """Remove neuron/channel groups whose norm is (near) zero, and keep training the smaller model.

    At the chosen epoch ends and at the end of fit, every group whose norm is at most
    ``max(threshold, relative_threshold * largest norm in its layer)`` is removed with Torch-Pruning,
    with everything coupled to it (BatchNorm entries, the next layer's input slice, channels tied by
    residual adds). The constant output of a removed neuron (e.g. ``relu(bias)``) is folded into the next
    layer's bias. The optimizer keeps its identity (so LR schedulers keep their position) and its state
    (momentum, Adam moments) sliced to the survivors; under DDP the model is re-wrapped, and the decision
    is taken on rank 0 and broadcast.

    With :class:`GroupSparsity`, put this callback after it. Alone, with ``relative_threshold`` (e.g. 1e-3),
    it removes the near-zero neurons that Adam + L2 + ReLU training produces (Yaguchi et al. 2018).

    Args:
        epochs: Epoch indices (0-based) after which to prune.
        every_n_epochs: Prune after every N-th epoch.
        at_fit_end: Prune when fit ends.
        threshold: Absolute group-norm threshold (0 removes exact zeros only).
        relative_threshold: Threshold as a fraction of the largest group norm of the layer.
        min_width: Neurons/channels always kept per layer.
        groups: Norm used for the decision: ``"incoming"``, ``"coupled"`` or ``"bn"`` groups (see
            :class:`GroupSparsity`). Default: the ``groups`` of the trainer's :class:`GroupSparsity`,
            else ``"incoming"``.
        include: Only layers matching these name patterns or types.
        exclude: Never these layers (the output layer never is).
        fold_constants: Fold constant outputs of removed neurons into the next bias.
        input_layers: Linear layers whose (near-)zero input features are removed too (see
            :class:`GroupSparsity`'s ``input_layers``).
        input_key: The model input's key in a dict batch (default: the first of ``BATCH_INPUT_KEYS`` it
            holds; a tuple or list batch's first item; a tensor batch itself).
        example_input: An input to trace the model with (a batch of one), when the module has no
            ``example_input_array``; without either, the first training batch's input is used.

    Example:
        >>> StructuredPruning(every_n_epochs=2, relative_threshold=1e-3)
        StructuredPruning(epochs=[], every_n_epochs=2, threshold=0.0, relative_threshold=0.001, min_width=1)
    """

    def __init__(
        self,
        *,
        epochs: Sequence[int] = (),
        every_n_epochs: int | None = None,
        at_fit_end: bool = True,
        threshold: float = 0.0,
        relative_threshold: float = 0.0,
        min_width: int = 1,
        groups: GroupMode | GroupModeName | None = None,
        include: Sequence[LayerSelector] | None = None,
        exclude: Sequence[LayerSelector] = (),
        fold_constants: bool = True,
        input_layers: Sequence[str] = (),
        input_key: str | None = None,
        example_input: Any = None,
    ) -> None:
        self.example_input = example_input
        self.batch_key = check_input_key(input_key)
        epochs = check_ints(epochs, "epochs", 0)
        every_n_epochs = check_int(every_n_epochs, "every_n_epochs", 1, optional=True)
        check_nonneg(threshold, "threshold")
        check_nonneg(relative_threshold, "relative_threshold")
        if relative_threshold >= 1:
            raise ArgumentError(
                "relative_threshold", f"relative_threshold must be < 1, got {relative_threshold=}"
            )
        check_int(min_width, "min_width", 1)
        check_selectors(include, exclude)
        if isinstance(input_layers, str):
            raise ArgumentError(
                "input_layers", f"input_layers must be a list of layer names, got {input_layers!r}"
            )
        self.input_layers = list(input_layers)
        self.epochs = sorted(set(epochs))
        self.every_n_epochs = every_n_epochs
        self.at_fit_end = at_fit_end
        self.threshold = float(threshold)
        self.relative_threshold = float(relative_threshold)
        self.min_width = min_width
        self.groups = None if groups is None else check_choice(GroupMode, groups, "groups")
        self.include = list(include) if include else None
        self.exclude = list(exclude)
        self.fold_constants = fold_constants
        self.removed_total = 0

    def __repr__(self) -> str:
        return (
            f"StructuredPruning(epochs={self.epochs}, every_n_epochs={self.every_n_epochs}, "
            f"threshold={self.threshold}, relative_threshold={self.relative_threshold}, min_width={self.min_width})"
        )

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            threshold=self.threshold, relative_threshold=self.relative_threshold, min_width=self.min_width
        )

    def _due(self, epoch: int) -> bool:
        return epoch in self.epochs or (
            self.every_n_epochs is not None and (epoch + 1) % self.every_n_epochs == 0
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._due(trainer.current_epoch):
            self.prune(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.at_fit_end:
            self.prune(trainer, pl_module)

    def _mode(self, trainer: pl.Trainer) -> GroupMode:
        if self.groups is not None:
            return self.groups
        found = (cb.groups for cb in trainer.callbacks if isinstance(cb, GroupSparsity))  # type: ignore[attr-defined]
        return next(found, GroupMode.incoming)

    def prune(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[dict[str, Any]]:
        """Remove the groups under the threshold now; returns the history records added."""
        x = example_inputs(pl_module)
        families, remove = plan_removals(
            pl_module,
            x,
            threshold=self.threshold,
            relative_threshold=self.relative_threshold,
            min_width=self.min_width,
            include=self.include,
            exclude=self.exclude,
            mode=self._mode(trainer),
            input_layers=self.input_layers,
        )

        def apply(plan: dict[str, Any]) -> list[dict[str, Any]]:
            chosen = {k: torch.tensor(v, dtype=torch.long) for k, v in plan.items()}
            return apply_removals(
                pl_module,
                families,
                chosen,
                x,
                optimizers=trainer.optimizers,
                fold_constants=self.fold_constants,
            )

        def describe(records: list[dict[str, Any]]) -> str:
            removed = sum(len(r["idxs"]) for r in records if r["kind"] == "prune")
            inputs = sum(len(r["idxs"]) for r in records if r["kind"] == "select_inputs")
            return f"StructuredPruning: removed {removed} neurons/channels and {inputs} input features"

        plan = {k: v.tolist() for k, v in remove.items()}
        records = change_shape(trainer, pl_module, lambda: plan, apply, describe)
        self.removed_total += sum(len(r["idxs"]) for r in records if r["kind"] == "prune")
        return records

    def state_dict(self) -> dict[str, Any]:
        return {"removed_total": self.removed_total}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.removed_total = int(state_dict.get("removed_total", 0))
