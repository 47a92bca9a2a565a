"""The one place that touches framework internals, so an upgrade breaks here and nowhere else."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

__all__ = ["close_process_group", "rewrap_ddp"]


def rewrap_ddp(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
    """After a shape change, wrap the module in a new DistributedDataParallel over its new parameters.

    DDP's reducer keeps the parameter list it was built with; a pruned or factorized model needs a fresh
    wrapper, else gradients of the new parameters are never all-reduced. Uses ``DDPStrategy._setup_model``
    (Lightning has no public way to re-wrap).
    """
    strategy: Any = trainer.strategy
    if isinstance(strategy.model, DistributedDataParallel) and hasattr(strategy, "_setup_model"):
        strategy.model = strategy._setup_model(pl_module)


def close_process_group(trainer: pl.Trainer) -> None:
    """Wait for every rank, then destroy the default process group while the interpreter is still whole.

    Lightning destroys it at exit only for NCCL; a gloo group left to interpreter finalization can abort
    the process ("terminate called without an active exception") after all work is done.
    """
    if dist.is_available() and dist.is_initialized():
        trainer.strategy.barrier("close_process_group")
        dist.destroy_process_group()
