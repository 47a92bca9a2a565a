"""The second pass of a flexible-rank step: BatchNorm statistics kept, logging off, gradients averaged."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from torch import nn

from lightning_compress._checks import ArgumentError
from lightning_compress.surgery import batch_input, set_size

__all__ = ["average_grads", "check_settings", "log_curve", "norm_stats", "restore_norm_stats", "side_pass"]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_settings(
    ratio_range: Any, alpha: Any, eps: Any, grad: Any, draw: Any, passes: Any
) -> tuple[float, float]:
    """``FlexibleRank``'s settings checked (one :class:`ArgumentError` naming the first bad one); returns the
    ratio range."""
    values = list(ratio_range) if isinstance(ratio_range, (list, tuple)) else []
    if len(values) != 2 or not all(_number(v) for v in values):
        raise ArgumentError(
            "ratio_range", f"ratio_range must be two numbers (low, high), got {ratio_range!r}"
        )
    low, high = float(values[0]), float(values[1])
    if not 0 < low <= high <= 1:
        raise ArgumentError(
            "ratio_range", f"ratio_range must satisfy 0 < low <= high <= 1, got {ratio_range!r}"
        )
    if not _number(alpha) or not 0 <= alpha <= 1:
        raise ArgumentError("alpha", f"alpha must be in [0, 1], got {alpha!r}")
    if not _number(eps) or not 0 < eps < 1:
        raise ArgumentError("eps", f"eps must be in (0, 1), got {eps!r}")
    for name, value, choices in (
        ("grad", grad, ("projected", "exact")),
        ("draw", draw, ("uniform", "log_uniform")),
        ("passes", passes, ("both", "alternate")),
    ):
        if value not in choices:
            raise ArgumentError(name, f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return low, high


@torch.no_grad()
def log_curve(
    trainer: pl.Trainer, pl_module: pl.LightningModule, shares: list[float], min_rank: int, key: str | None
) -> list[tuple[float, int, float]]:
    """The model at each share of its parameters (BatchNorm re-estimated on training batches), its accuracy
    on the validation batches, logged to every logger (and as a W&B table and line chart)."""
    loader: Any = trainer.val_dataloaders
    train: Any = trainer.train_dataloader
    loader, train = (x[0] if isinstance(x, (list, tuple)) else x for x in (loader, train))
    if loader is None or pl_module.example_input_array is None:
        return []
    rows = []
    for share in shares:
        try:
            small = set_size(
                pl_module, pl_module.example_input_array, params=share, batches=train, min_rank=min_rank,
                input_key=key,
            )  # fmt: skip
        except ValueError:
            continue
        small.eval()
        hits = total = 0
        for batch in loader:
            x, y = batch_input(batch, key).to(pl_module.device), batch[1].to(pl_module.device)
            hits += int((small(x).argmax(-1) == y).sum())
            total += len(y)
        params = sum(p.numel() for p in small.parameters())
        rows.append((share, params, hits / max(total, 1)))
    for logger in trainer.loggers:
        logger.log_metrics(
            {f"flexible_rank/val_acc@{s:g}": acc for s, _, acc in rows}, step=trainer.global_step
        )
        experiment = getattr(logger, "experiment", None)
        if type(logger).__name__ == "WandbLogger" and experiment is not None:
            import wandb

            table = wandb.Table(columns=["share", "params", "val_acc"], data=[list(r) for r in rows])
            experiment.log({"flexible_rank/sizes": table, "flexible_rank/curve": wandb.plot.line(
                table, "params", "val_acc", title="one flexible-rank model, every size")})  # fmt: skip
    return rows


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
