"""One training run from a config: model, data, callbacks and Trainer; used by ``train`` and by sweep trials.

Writes the run folder (config, per-epoch metrics, checkpoints, summary) and returns the summary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger

from lightning_compress._compat import close_process_group
from lightning_compress.config import (
    RunConfig,
    build_callbacks,
    build_datamodule,
    build_module,
    to_yaml,
    trainer_kwargs,
)
from lightning_compress.surgery import layer_widths

__all__ = ["make_run_dir", "train"]


def make_run_dir(cfg: RunConfig) -> Path:
    """A new folder ``output_dir/name/YYYYmmdd-HHMMSS[-k]`` for one run."""
    base = Path(cfg.output_dir) / cfg.name
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = base / stamp
    k = 1
    while run_dir.exists():
        run_dir = base / f"{stamp}-{k}"
        k += 1
    run_dir.mkdir(parents=True)
    return run_dir


def _scalar(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    return None if value is None else float(value)


def train(
    cfg: RunConfig,
    *,
    run_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    loggers: Sequence[Logger] = (),
) -> dict[str, Any]:
    """Train and test the run ``cfg`` describes; return (and write) its summary.

    The run folder gets ``config.yaml``, ``logs/metrics.csv`` (per-epoch curves), ``checkpoints/last.ckpt``
    (to resume with ``resume_from=...``), ``final.ckpt`` and ``summary.json``.

    Args:
        cfg: A validated run config.
        run_dir: Where to write; a new timestamped folder under ``cfg.output_dir`` by default.
        callbacks: Extra callbacks (compression callbacks come from ``cfg.compression``).
        loggers: Extra loggers beside the CSV logger.
    """
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out = Path(run_dir) if run_dir is not None else make_run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(cfg))
    datamodule = build_datamodule(cfg.data)
    module = build_module(cfg)
    dense = module.size()
    checkpoint = ModelCheckpoint(dirpath=out / "checkpoints", save_last=True, save_top_k=0)
    trainer = pl.Trainer(
        **trainer_kwargs(cfg.trainer),
        default_root_dir=out,
        callbacks=[*build_callbacks(cfg.compression), checkpoint, *callbacks],
        logger=[CSVLogger(out, name="logs", version=""), *loggers],
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.resume_from)
    fit_seconds = time.perf_counter() - start
    # validate the final model: compression at fit end may have changed it after the last validation
    fit_metrics = (
        dict(trainer.validate(module, datamodule=datamodule, verbose=False)[0]) if trainer.max_epochs else {}
    )
    test_metrics = trainer.test(module, datamodule=datamodule, verbose=False)[0] if trainer.max_epochs else {}
    trainer.save_checkpoint(out / "final.ckpt")
    size = module.size()
    summary: dict[str, Any] = {
        "name": cfg.name,
        "run_dir": str(out),
        "model": cfg.model.name.value,
        "epochs": trainer.current_epoch,
        "fit_seconds": round(fit_seconds, 2),
        "val_acc": _scalar(fit_metrics, "val/acc"),
        "val_loss": _scalar(fit_metrics, "val/loss"),
        "test_acc": _scalar(test_metrics, "test/acc"),
        "test_loss": _scalar(test_metrics, "test/loss"),
        "params": size["params"],
        "macs": size["macs"],
        "dense_params": dense["params"],
        "dense_macs": dense["macs"],
        "final_checkpoint": str(out / "final.ckpt"),
        "widths": layer_widths(module),
    }
    if trainer.is_global_zero:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    close_process_group(trainer)
    return summary
