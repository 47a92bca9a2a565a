"""The second pass of a flexible-rank step: BatchNorm statistics kept, logging off, gradients averaged."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from torch import nn

__all__ = ["average_grads", "norm_stats", "restore_norm_stats", "side_pass"]


def average_grads(grads: list[Any]) -> None:
    """Average the low-rank gradients over the DDP processes (one all-reduce)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return
    present = [g for g in grads if g is not None]
    if not present:
        return
    flat = torch.cat([g.reshape(-1) for g in present])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for i, g in enumerate(grads):
        if g is not None:
            grads[i] = flat[offset : offset + g.numel()].view_as(g)
            offset += g.numel()


def norm_stats(model: nn.Module) -> list[dict[str, torch.Tensor]]:
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return [{k: v.clone() for k, v in m.named_buffers(recurse=False) if v is not None} for m in norms]


def restore_norm_stats(model: nn.Module, saved: list[dict[str, torch.Tensor]]) -> None:
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m, buffers in zip(norms, saved, strict=True):
            for k, v in buffers.items():
                getattr(m, k).copy_(v)


@contextlib.contextmanager
def side_pass(pl_module: pl.LightningModule) -> Iterator[None]:
    """A second ``training_step``: nothing logged, BatchNorm running statistics as they were."""
    saved = norm_stats(pl_module)
    pl_module.log = lambda *args, **kwargs: None  # type: ignore[method-assign]
    pl_module.log_dict = lambda *args, **kwargs: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        del pl_module.log, pl_module.log_dict
        restore_norm_stats(pl_module, saved)
