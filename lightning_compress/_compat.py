"""The one place that touches framework internals, so an upgrade breaks here and nowhere else."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch.nn.parallel import DistributedDataParallel

__all__ = ["rewrap_ddp"]


def rewrap_ddp(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
    """After a shape change, wrap the module in a new DistributedDataParallel over its new parameters.

    DDP's reducer keeps the parameter list it was built with; a pruned or factorized model needs a fresh
    wrapper, else gradients of the new parameters are never all-reduced. Uses ``DDPStrategy._setup_model``
    (Lightning has no public way to re-wrap).
    """
    strategy: Any = trainer.strategy
    if isinstance(strategy.model, DistributedDataParallel) and hasattr(strategy, "_setup_model"):
        strategy.model = strategy._setup_model(pl_module)
