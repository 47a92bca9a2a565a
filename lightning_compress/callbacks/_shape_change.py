"""The one sequence every callback that changes a model's shape goes through, so DDP stays in step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from lightning_compress._compat import rewrap_ddp
from lightning_compress.callbacks._common import remember_example
from lightning_compress.surgery import get_history

__all__ = ["change_shape"]

Plan = dict[str, Any]  # plain types only: it is broadcast from rank 0
Records = list[dict[str, Any]]


def change_shape(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    plan: Callable[[], Plan],
    apply: Callable[[Plan], Records],
    describe: Callable[[Records], str],
) -> Records:
    """Decide on rank 0, broadcast, apply, then re-wrap DDP and log.

    Every rank computes ``plan()`` (so every rank reaches the same collectives inside it), and every rank
    applies rank 0's plan: all ranks end with the same architecture even if their weights drifted.
    ``apply(plan)`` does the surgery, records it in the model's history and rebinds
    ``trainer.optimizers``; it returns the records added. ``describe(records)`` is the log line.
    """
    decision = trainer.strategy.broadcast(plan(), src=0)
    before = sum(p.numel() for p in pl_module.parameters())
    records = apply(decision)
    if records:
        remember_example(pl_module)  # a compressed checkpoint replays without an example input at hand
        rewrap_ddp(trainer, pl_module)
        after = sum(p.numel() for p in pl_module.parameters())
        rank_zero_info(
            f"{describe(records)} at epoch {trainer.current_epoch} ({before:,} -> {after:,} parameters, "
            f"{len(get_history(pl_module))} records in history)"
        )
    return records
