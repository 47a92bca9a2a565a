"""Compression-aware low-rank training: the nuclear-norm prox during fit, and layers split in two."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info

from lightning_compress._checks import ArgumentError, check_int, check_ints
from lightning_compress.callbacks._common import example_inputs
from lightning_compress.callbacks._proximal import ProximalCallback, ProxSchedule, ProxScheduleName
from lightning_compress.callbacks._shape_change import change_shape
from lightning_compress.functional import as_matrix, break_even_rank, split_rank
from lightning_compress.regularizers import NuclearNorm, RankBudget, size_target
from lightning_compress.surgery import LayerSelector, count_params_and_macs, factorize_layer, split_speedups

__all__ = ["LowRank"]


class LowRank(ProximalCallback):
    r"""Drive each layer's weight to low rank, then split it into two thin layers (Alvarez & Salzmann 2017).

    A shell over :class:`~lightning_compress.regularizers.NuclearNorm`: singular value thresholding runs
    every ``every_n_steps`` optimizer steps (step size ``lr * N``) or at epoch ends. At ``split_epochs``,
    every ``split_every_n_epochs`` and at fit end, every regularized layer whose rank (the rank the last
    SVT left, or the ``energy`` or ``param_ratio`` rule) is below the break-even rank
    :math:`mn/(m+n)` is replaced by two thin layers (``factorize`` record in the history; the optimizer
    keeps training both; rank 0 decides under DDP). Use it with
    :class:`~lightning_compress.callbacks.GroupSparsity` on the same layers for the paper's combined
    method: after a split, the group lasso acts on the neurons of the second thin layer and on the rank
    channels between the two.

    Args:
        strength: :math:`\tau`, the default strength of every layer (default 1e-3).
        target_params: Instead of a strength, the size to reach after the splits: a share of the dense
            model's parameters in (0, 1) or a count. The singular values a uniform nuclear norm would
            remove first are chosen until the split layers meet it (rank 1 kept in every layer); only they
            are shrunk, to exactly zero by the end of epoch ``stop_epoch - 1`` (else two thirds of the fit),
            and held there. With :class:`GroupSparsity` and a target of its own, its target is the size
            after neuron removal and this one the final size.
        target_macs: The same in multiply-accumulates.
        layer_strengths: Name pattern -> strength, overriding ``strength`` for matching layers.
        include: Only layers matching these name patterns or module types.
        exclude: Never these layers (the output layer never is regularized).
        schedule: ``"step"`` (every ``every_n_steps`` steps), ``"epoch"`` or ``"subgradient"``.
        every_n_steps: SVT every N optimizer steps with N times the step size. An SVD of a 300 x 784
            weight costs tens of steps of LeNet-300-100 on a CPU: keep N large.
        warmup_epochs: Epochs without regularization.
        ramp_epochs: Epochs over which the strength grows linearly after warm-up.
        stop_epoch: From this epoch on no regularization (the split layers fine-tune).
        split_epochs: Epochs (0-based) at whose end layers are split.
        split_every_n_epochs: Split at the end of every N-th epoch.
        split_at_fit_end: Split when fit ends.
        energy: Rank rule at a split: the smallest rank holding this share of the squared singular
            values (default: the rank the last SVT left, logged as ``low_rank/rank/<layer>``; before any
            SVT, the singular values above ``rel_tol`` of the largest).
        param_ratio: Rank rule at a split instead: the largest rank at which the two thin layers hold at
            most this share of the layer's weights (each layer is split once: a budget, as for a
            post-hoc truncated SVD, with the nuclear norm's training before it).
        rel_tol: Singular values at most this fraction of the layer's largest count as zero.
        randomized_svd: SVT by a randomized SVD of about the last rank where that is faster.
        only_if_faster: Split a layer only where its two thin layers run faster than the dense one on
            the current device (timed on the layer's input for the example, ``speed_batch`` samples);
            slower splits keep the dense layer and are reported.
        speed_batch: Batch size of that timing (1: latency of one sample).
        input_key: The model input's key in a dict batch (default: the first of ``BATCH_INPUT_KEYS`` it
            holds; a tuple or list batch's first item; a tensor batch itself).
        example_input: An input to trace the model with (a batch of one), when the module has no
            ``example_input_array``; without either, the first training batch's input is used.

    Example:
        >>> LowRank(strength=1e-2, every_n_steps=100, split_at_fit_end=True)
        LowRank(strength=0.01, every_n_steps=100, schedule='step')
    """

    log_prefix = "low_rank"

    def __init__(
        self,
        strength: float | None = None,
        *,
        target_params: float | None = None,
        target_macs: float | None = None,
        layer_strengths: Mapping[str, float] | None = None,
        include: Sequence[LayerSelector] | None = None,
        exclude: Sequence[LayerSelector] = (),
        schedule: ProxSchedule | ProxScheduleName = ProxSchedule.step,
        every_n_steps: int = 100,
        warmup_epochs: int = 0,
        ramp_epochs: int = 0,
        stop_epoch: int | None = None,
        split_epochs: Sequence[int] = (),
        split_every_n_epochs: int | None = None,
        split_at_fit_end: bool = True,
        energy: float | None = None,
        param_ratio: float | None = None,
        rel_tol: float = 1e-5,
        randomized_svd: bool = True,
        only_if_faster: bool = False,
        speed_batch: int = 1,
        input_key: str | None = None,
        example_input: Any = None,
    ) -> None:
        super().__init__(
            schedule=schedule,
            every_n_steps=every_n_steps,
            warmup_epochs=warmup_epochs,
            ramp_epochs=ramp_epochs,
            stop_epoch=stop_epoch,
            input_key=input_key,
            example_input=example_input,
        )
        target = size_target(target_params, target_macs)
        rules = {
            "energy": energy is not None,
            "param_ratio": param_ratio is not None,
            "only_if_faster": only_if_faster,
        }
        if target is not None and any(rules.values()):
            raise ArgumentError(
                next(name for name, given in rules.items() if given),
                f"{target.argument} sets the ranks itself: energy, param_ratio and only_if_faster cannot be "
                "given with it",
            )
        strength = self._set_target(target, strength, default=1e-3)
        self.regularizer: NuclearNorm = NuclearNorm(
            strength,
            layer_strengths=layer_strengths,
            include=include,
            exclude=exclude,
            randomized_svd=randomized_svd,
        )
        self.split_epochs = check_ints(split_epochs, "split_epochs", 0)
        self.split_every_n_epochs = check_int(split_every_n_epochs, "split_every_n_epochs", 1, optional=True)
        if energy is not None and not 0 < energy <= 1:
            raise ArgumentError("energy", f"energy must be in (0, 1], got {energy=}")
        if param_ratio is not None and not 0 < param_ratio < 1:
            raise ArgumentError("param_ratio", f"param_ratio must be in (0, 1), got {param_ratio=}")
        if energy is not None and param_ratio is not None:
            raise ArgumentError("param_ratio", "give at most one of energy and param_ratio")
        if not 0 <= rel_tol < 1:
            raise ArgumentError("rel_tol", f"rel_tol must be in [0, 1), got {rel_tol=}")
        self.split_at_fit_end = split_at_fit_end
        self.energy = energy
        self.param_ratio = param_ratio
        self.only_if_faster = only_if_faster
        self.speed_batch = check_int(speed_batch, "speed_batch", 1)
        self.rel_tol = float(rel_tol)

    @property
    def strength(self) -> float:
        return self.regularizer.strength

    def __repr__(self) -> str:
        return (
            f"LowRank(strength={self.strength}, every_n_steps={self.every_n_steps}, "
            f"schedule={self.schedule.value!r})"
        )

    @property
    def state_key(self) -> str:
        return self._generate_state_key(strength=self.strength, every_n_steps=self.every_n_steps)

    def split_plan(self, pl_module: pl.LightningModule) -> dict[str, int]:
        """Layer name -> the rank it would be split at now (only layers below their break-even rank)."""
        self._attach(pl_module)
        # what the prox left: the rank of the last SVT, recorded then (the optimizer steps since have
        # made the weight full rank again, with small singular values the split truncates)
        recorded = self.regularizer.ranks if self.energy is None and self.param_ratio is None else {}
        plan = {}
        for name in self.regularizer.layer_names():
            weight = pl_module.get_submodule(name).weight
            if not isinstance(weight, torch.Tensor):
                continue
            if name in recorded:
                shape = as_matrix(weight).shape
                last = max(recorded[name], 1)
                rank: int | None = last if last < break_even_rank(shape[0], shape[1]) else None
            else:
                rank = split_rank(
                    weight, energy=self.energy, param_ratio=self.param_ratio, rel_tol=self.rel_tol
                )
            if rank is not None:
                plan[name] = rank
        if self.only_if_faster and plan:
            speed = split_speedups(pl_module, plan, example_inputs(pl_module), batch=self.speed_batch)
            slower = sorted(name for name in plan if speed[name] <= 1.0)
            if slower:
                rank_zero_info(
                    "LowRank: kept dense (the split is not faster here): "
                    + ", ".join(f"{n} ({speed[n]:.2f}x)" for n in slower)
                )
            plan = {name: rank for name, rank in plan.items() if name not in slower}
        return plan

    def split(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[dict[str, Any]]:
        """Split every layer below its break-even rank now; returns the history records added."""

        def apply(plan: dict[str, Any]) -> list[dict[str, Any]]:
            records: list[dict[str, Any]] = []
            for name, rank in plan.items():
                records += factorize_layer(pl_module, name, int(rank), optimizers=trainer.optimizers)
            return records

        def describe(records: list[dict[str, Any]]) -> str:
            ranks = ", ".join(f"{r['module']}: {r['rank']}" for r in records)
            return f"LowRank: split {len(records)} layers in two ({ranks})"

        return change_shape(trainer, pl_module, lambda: self.split_plan(pl_module), apply, describe)

    def _split_due(self, epoch: int) -> bool:
        every = self.split_every_n_epochs
        return epoch in self.split_epochs or (every is not None and (epoch + 1) % every == 0)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._split_due(trainer.current_epoch):
            self.split(trainer, pl_module)

    def make_budget(self) -> RankBudget:
        assert self.target is not None
        return RankBudget(self.regularizer, self.target)

    def extra_metrics(self, pl_module: pl.LightningModule) -> dict[str, float]:
        if not isinstance(self.budget, RankBudget):
            return {}
        size = self.budget.size()  # as the split at the current ranks would leave it
        return {"effective_params": size["params"], "effective_macs": size["macs"]}

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.split_at_fit_end:
            self.split(trainer, pl_module)
        if self.budget is not None and self.target is not None:
            params, macs = count_params_and_macs(pl_module, example_inputs(pl_module))
            reached, dense = {"params": params, "macs": macs}[self.target.measure], self.budget.dense
            rank_zero_info(
                f"LowRank: {reached:,} {self.target.measure} ({100 * reached / dense[self.target.measure]:.1f}% "
                f"of dense) against the target {self.target.describe(dense)}"
            )
