"""Compress a trained model to low rank on target-domain data: DALR, SVD or SVD with bias compensation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, cast

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_info

from lightning_compress._checks import ArgumentError, check_choice, check_int
from lightning_compress._compat import rewrap_ddp
from lightning_compress.callbacks._common import (
    TracingCallback,
    check_input_key,
    example_inputs,
    has_example,
    remember_example,
)
from lightning_compress.surgery import (
    INPUTS_ATTRIBUTE,
    CalibrationOrder,
    LayerResult,
    LayerSelector,
    LowRankMethod,
    RankRule,
    batch_input,
    check_ridge,
    compress_low_rank,
    low_rank_layers,
    store_example,
)
from lightning_compress.surgery.base import model_input
from lightning_compress.surgery.factorize.rank_rules import CalibrationOrderName, LowRankMethodName

__all__ = ["LowRankCompression"]

DataSource = Literal["train", "val"] | Callable[[pl.Trainer], Iterable[Any]]


class LowRankCompression(TracingCallback):
    r"""Split the trained layers into two thin layers fitted on data (Masana et al. 2017), once.

    At ``at_epoch``'s end (the remaining epochs fine-tune the compressed model) or at fit end, the
    chosen layers' input statistics are streamed over ``data`` (only ``X X^T`` or ``Z Z^T`` is kept) and
    each layer is replaced by its ``method`` factors (:func:`~lightning_compress.surgery.compress_low_rank`;
    ``factorize`` records in the history, optimizers rebound). Under DDP the statistics are all-reduced,
    rank 0's ranks are used everywhere and the new weights are broadcast from rank 0.

    Args:
        method: ``"dalr"`` (on the data), ``"dalr_bias"`` (on the centered data, bias compensated),
            ``"svd"`` (weights only) or ``"svd_bias"``.
        params: Budget for all compressed layers: a share (<= 1) of their weights or a count.
        macs: Instead, a budget of their MACs per sample (a share or a count).
        rank: Instead, one rank for every layer.
        energy: Instead, per layer the share of the output energy kept.
        param_ratio: Instead, per layer the share of its weights kept.
        include: Layers to compress (name patterns or module types; default every Linear and Conv2d
            but the output layer).
        exclude: Layers never compressed.
        ridge: DALR's ridge relative to the mean input energy.
        order: ``"original"``, ``"sequential"`` (each layer calibrated on the compressed inputs) or
            ``"corrected"`` (sequential, fitted to the original network's outputs of each layer).
        at_epoch: Compress at the end of this (0-based) epoch; ``None``: at fit end.
        data: ``"train"`` or ``"val"`` (the datamodule's loader), or ``trainer -> iterable`` (for a held
            apart calibration split).
        max_batches: Use at most this many batches per pass.
        input_key: The model input's key in a dict batch (default: the first of ``BATCH_INPUT_KEYS`` it
            holds; a tuple or list batch's first item; a tensor batch itself).
        example_input: An input to trace the model with (a batch of one), when the module has no
            ``example_input_array``; without either, the first training batch's input is used.

    Example:
        >>> LowRankCompression(method="dalr", params=0.25)
        LowRankCompression(method='dalr', params=0.25, at_epoch=None)
    """

    def __init__(
        self,
        method: LowRankMethod | LowRankMethodName = LowRankMethod.dalr,
        *,
        params: float | None = None,
        macs: float | None = None,
        rank: int | None = None,
        energy: float | None = None,
        param_ratio: float | None = None,
        include: Sequence[LayerSelector] | None = None,
        exclude: Sequence[LayerSelector] = (),
        ridge: float = 0.0,
        order: CalibrationOrder | CalibrationOrderName = CalibrationOrder.original,
        at_epoch: int | None = None,
        data: DataSource = "train",
        max_batches: int | None = None,
        input_key: str | None = None,
        example_input: Any = None,
    ) -> None:
        self.example_input = example_input
        self.input_key = self.batch_key = check_input_key(input_key)
        self.method = check_choice(LowRankMethod, method, "method")
        self.order = check_choice(CalibrationOrder, order, "order")
        # the same checks as compress_low_rank, before any training
        self.rule = RankRule(params=params, macs=macs, rank=rank, energy=energy, param_ratio=param_ratio)
        check_ridge(ridge)
        self.rules: dict[str, Any] = self.rule.given
        check_int(at_epoch, "at_epoch", 0, optional=True)
        if not callable(data) and data not in ("train", "val"):
            raise ArgumentError(
                "data", f"data must be 'train', 'val' or a function of the trainer, got {data!r}"
            )
        check_int(max_batches, "max_batches", 1, optional=True)
        self.include, self.exclude, self.ridge = include, exclude, ridge
        self.at_epoch, self.data, self.max_batches = at_epoch, data, max_batches
        self.done = False
        self.results: list[LayerResult] = []

    def preflight(self, pl_module: pl.LightningModule, max_epochs: int | None = None) -> None:
        """Before any work: a compression epoch the fit never reaches, or ``include`` / ``exclude`` that
        select no layer, is a one-line :class:`ArgumentError`."""
        if self.at_epoch is not None and max_epochs is not None and 0 <= max_epochs <= self.at_epoch:
            raise ArgumentError(
                "at_epoch",
                f"at_epoch={self.at_epoch} is never reached: the fit ends after epoch {max_epochs - 1} "
                "(max_epochs); lower at_epoch, or leave it out to compress at fit end",
            )
        if has_example(pl_module):
            low_rank_layers(pl_module, self.include, self.exclude, example_inputs(pl_module))

    def __repr__(self) -> str:
        rule = ", ".join(f"{k}={v!r}" for k, v in self.rules.items())
        return f"{type(self).__name__}(method={self.method.value!r}, {rule}, at_epoch={self.at_epoch})"

    @property
    def state_key(self) -> str:
        return self._generate_state_key(method=self.method.value, **self.rules)

    def _batches(self, trainer: pl.Trainer) -> Iterable[Any] | None:
        if self.method is LowRankMethod.svd:
            return None
        if callable(self.data):
            return self.data(trainer)
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None:
            return datamodule.train_dataloader() if self.data == "train" else datamodule.val_dataloader()
        # loaders given to fit (or the module's own hooks): the ones this fit runs on
        loaders: Any = trainer.train_dataloader if self.data == "train" else trainer.val_dataloaders
        if isinstance(loaders, (list, tuple)):
            loaders = loaders[0] if loaders else None
        if loaders is None:
            raise ArgumentError("data", f"data={self.data!r}: this fit has no {self.data} data loader")
        return cast(Iterable[Any], loaders)

    def apply(
        self, model: torch.nn.Module, batches: Iterable[Any] | None, **options: Any
    ) -> list[LayerResult]:
        """:func:`~lightning_compress.surgery.compress_low_rank` of ``model`` with this callback's method,
        rank rule and layers (``options``: its ``optimizers``, ``progress``, ``decide``), outside a fit.
        The example input (the model's, else the first batch's) is kept in its state dict, so that the
        compressed checkpoint reloads without one."""
        results = compress_low_rank(
            model,
            batches,
            method=self.method,
            include=self.include,
            exclude=self.exclude,
            ridge=self.ridge,
            order=self.order,
            max_batches=self.max_batches,
            to_inputs=(lambda batch: model_input(batch, self.input_key)) if self.input_key else None,
            **self.rules,
            **options,
        )
        if INPUTS_ATTRIBUTE not in model._buffers:
            example = getattr(model, "example_input_array", None)
            if example is None and batches is not None:
                with torch.random.fork_rng(devices=[]):  # a shuffling loader's draw is not the run's
                    example = batch_input(next(iter(batches)), self.input_key)
            if example is not None:
                store_example(model, example)
        return results

    def compress(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[LayerResult]:
        """Compress now (every rank must call it); returns what was done to each layer."""
        strategy = trainer.strategy
        before = sum(p.numel() for p in pl_module.parameters())
        self.results = self.apply(
            pl_module,
            self._batches(trainer),
            optimizers=trainer.optimizers,
            progress=trainer.is_global_zero and trainer.progress_bar_callback is not None,
            decide=lambda ranks: strategy.broadcast(ranks, src=0),
        )
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            with torch.no_grad():
                for r in self.results:
                    if r.rank is not None:
                        for p in pl_module.get_submodule(r.name).parameters():
                            dist.broadcast(p.data, src=0)
        rewrap_ddp(trainer, pl_module)
        remember_example(pl_module)
        self.done = True
        after = sum(p.numel() for p in pl_module.parameters())
        ranks = ", ".join(f"{r.name}: {r.rank if r.rank is not None else 'dense'}" for r in self.results)
        rank_zero_info(
            f"LowRankCompression ({self.method.value}): {ranks} at epoch {trainer.current_epoch} "
            f"({before:,} -> {after:,} parameters)"
        )
        errors = {f"low_rank_compression/{r.name}/error": r.relative_error for r in self.results}
        if trainer.logger is not None and trainer.is_global_zero:
            trainer.logger.log_metrics(
                {k: v for k, v in errors.items() if v is not None}, step=trainer.global_step
            )
        return self.results

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.done and self.at_epoch is not None and trainer.current_epoch == self.at_epoch:
            self.compress(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.done and self.at_epoch is None:
            self.compress(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.done = bool(state_dict.get("done", False))
