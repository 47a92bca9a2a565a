"""Build the data module, LightningModule and Trainer arguments that a config describes."""

from __future__ import annotations

from dataclasses import asdict
from enum import Enum
from typing import Any

from lightning.pytorch.callbacks import Callback

from lightning_compress.callbacks import GroupSparsity, NeuronReport, StructuredPruning
from lightning_compress.config.schema import (
    CompressionConfig,
    DataConfig,
    DatasetName,
    RunConfig,
    TrainerConfig,
)
from lightning_compress.data import FashionMNISTDataModule, IDXImageDataModule, MNISTDataModule
from lightning_compress.models import Classifier

__all__ = ["build_callbacks", "build_datamodule", "build_module", "trainer_kwargs"]


def build_datamodule(cfg: DataConfig) -> IDXImageDataModule:
    """The data module for ``cfg``."""
    cls = FashionMNISTDataModule if cfg.name == DatasetName.fashion_mnist else MNISTDataModule
    return cls(
        cfg.data_dir,
        batch_size=cfg.batch_size,
        val_size=cfg.val_size,
        split_seed=cfg.split_seed,
        num_workers=cfg.num_workers,
        download=cfg.download,
        normalize=cfg.normalize,
    )


def build_module(cfg: RunConfig) -> Classifier:
    """The classifier LightningModule for ``cfg``."""
    return Classifier(
        cfg.model.name.value,
        model_kwargs=dict(cfg.model.kwargs),
        optimizer=cfg.optimizer.name.value,
        lr=cfg.optimizer.lr,
        momentum=cfg.optimizer.momentum,
        weight_decay=cfg.optimizer.weight_decay,
        nesterov=cfg.optimizer.nesterov,
        scheduler=cfg.scheduler.name.value,
        step_size=cfg.scheduler.step_size,
        gamma=cfg.scheduler.gamma,
    )


def trainer_kwargs(cfg: TrainerConfig) -> dict[str, Any]:
    """Keyword arguments for ``lightning.pytorch.Trainer`` (unset limits left at Lightning's defaults)."""
    kwargs: dict[str, Any] = {
        "max_epochs": cfg.max_epochs,
        "accelerator": cfg.accelerator,
        "devices": cfg.devices,
        "strategy": cfg.strategy,
        "precision": cfg.precision,
        "accumulate_grad_batches": cfg.accumulate_grad_batches,
        "gradient_clip_val": cfg.gradient_clip_val,
        "deterministic": cfg.deterministic,
        "enable_progress_bar": cfg.enable_progress_bar,
        "log_every_n_steps": cfg.log_every_n_steps,
    }
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = getattr(cfg, name)
        if value is not None:
            kwargs[name] = value
    return kwargs


def _plain(section: Any) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(section).items()}


def build_callbacks(cfg: CompressionConfig) -> list[Callback]:
    """The compression callbacks a config's ``compression`` section asks for, in the order they must run.

    Example:
        >>> from lightning_compress.config.schema import GroupSparsityConfig, PruningConfig
        >>> build_callbacks(CompressionConfig(group_sparsity=GroupSparsityConfig(strength=0.01), pruning=PruningConfig()))
        [GroupSparsity(strength=0.01, l1_ratio=0.0, groups='incoming', schedule='step'), StructuredPruning(epochs=[], every_n_epochs=None, threshold=0.0, relative_threshold=0.0, min_width=1)]
    """
    callbacks: list[Callback] = []
    if cfg.group_sparsity is not None:
        kwargs = _plain(cfg.group_sparsity)
        callbacks.append(GroupSparsity(kwargs.pop("strength"), **kwargs))
    if cfg.pruning is not None:
        callbacks.append(StructuredPruning(**_plain(cfg.pruning)))
    if cfg.neuron_report is not None:
        callbacks.append(NeuronReport(**_plain(cfg.neuron_report)))
    return callbacks
