"""Build the data module, LightningModule and Trainer arguments that a config describes."""

from __future__ import annotations

import sys
from typing import Any

from lightning_compress.config.schema import DataConfig, DatasetName, RunConfig, TrainerConfig
from lightning_compress.data import FashionMNISTDataModule, IDXImageDataModule, MNISTDataModule
from lightning_compress.models import Classifier

__all__ = ["build_datamodule", "build_module", "trainer_kwargs"]


def build_datamodule(cfg: DataConfig) -> IDXImageDataModule:
    """The data module for ``cfg`` (files are read at ``setup``, not here).

    Example:
        >>> build_datamodule(DataConfig(batch_size=64)).batch_size
        64
    """
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
    """The classifier LightningModule for ``cfg``.

    Example:
        >>> type(build_module(RunConfig()).model).__name__
        'LeNet300100'
    """
    return Classifier(
        cfg.model.class_path or cfg.model.name.value,
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
    """Keyword arguments for ``lightning.pytorch.Trainer`` (unset limits left at Lightning's defaults).

    Example:
        >>> trainer_kwargs(TrainerConfig(max_epochs=2, limit_train_batches=5))['limit_train_batches']
        5
    """
    kwargs: dict[str, Any] = {
        "max_epochs": cfg.max_epochs,
        "accelerator": cfg.accelerator,
        "devices": cfg.devices,
        "strategy": cfg.strategy,
        "precision": cfg.precision,
        "accumulate_grad_batches": cfg.accumulate_grad_batches,
        "gradient_clip_val": cfg.gradient_clip_val,
        "deterministic": cfg.deterministic,
        # bars and the model summary on a terminal only: in a log, tqdm's escape sequences are noise
        "enable_progress_bar": cfg.enable_progress_bar and sys.stdout.isatty(),
        "enable_model_summary": cfg.enable_progress_bar and sys.stdout.isatty(),
        "log_every_n_steps": cfg.log_every_n_steps,
    }
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = getattr(cfg, name)
        if value is not None:
            kwargs[name] = value
    return kwargs
