"""One training run from a config: model, data, callbacks and Trainer; used by ``train`` and by sweep trials.

Writes the run folder (config, per-epoch metrics, checkpoints, summary) and returns the summary.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, Logger

from lightning_compress._compat import close_process_group
from lightning_compress.callbacks import AtomicCheckpointIO, EpochCheckpoint
from lightning_compress.config import (
    ConfigError,
    RunConfig,
    build_callbacks,
    build_datamodule,
    build_module,
    preflight_callbacks,
    to_yaml,
    trainer_kwargs,
)
from lightning_compress.data import IDXImageDataModule
from lightning_compress.surgery import layer_widths

__all__ = ["make_run_dir", "preflight", "train"]


def make_run_dir(cfg: RunConfig) -> Path:
    """A new folder ``output_dir/name/YYYYmmdd-HHMMSS[-k]`` for one run, created atomically.

    Runs started at the same instant each get their own folder: creating one that exists moves on to
    the next suffix.

    Example:
        >>> cfg = RunConfig(output_dir=tempfile.mkdtemp(), name="demo")
        >>> make_run_dir(cfg) != make_run_dir(cfg)
        True
    """
    base = Path(cfg.output_dir) / cfg.name
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(10_000):
        run_dir = base / (stamp if k == 0 else f"{stamp}-{k}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        return run_dir
    raise FileExistsError(f"no free run folder under {base} for {stamp}")


def _write_text(path: Path, text: str) -> None:
    """Write a small file whole or not at all (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.part")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise ConfigError("output_dir", f"cannot write in {str(folder)!r}: {err.strerror or err}") from None


def _check_checkpoint(path: str) -> None:
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file fails in many ways inside torch.load
        problem = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError("resume_from", f"{path!r} is not a readable checkpoint: {problem}") from None


def preflight(cfg: RunConfig) -> IDXImageDataModule:
    """Check, before any training time is spent, what can fail only at run time; return the data module.

    The output folder must be writable, ``resume_from`` must load, and the data files must read (they are
    read into the returned data module, so the run does not read them again).

    Raises:
        ConfigError: naming the key (``output_dir``, ``resume_from``, ``data``) and the problem.

    Example:
        >>> from lightning_compress.config import DataConfig
        >>> cfg = RunConfig(output_dir=tempfile.mkdtemp(), data=DataConfig(data_dir="/no/such/folder"))
        >>> preflight(cfg)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lightning_compress.config.errors.ConfigError: data: fashion-mnist files not found in '/no/such/folder' ...
    """
    _check_writable(Path(cfg.output_dir) / cfg.name)
    if cfg.resume_from is not None:
        _check_checkpoint(cfg.resume_from)
    datamodule = build_datamodule(cfg.data)
    try:
        datamodule.prepare_data()
        datamodule.setup("fit")
        datamodule.setup("test")
    except (OSError, ValueError, EOFError, RuntimeError) as err:
        problem = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError("data", problem) from None
    return datamodule


def _scalar(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    return None if value is None else float(value)


def train(
    cfg: RunConfig,
    *,
    run_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    loggers: Sequence[Logger] = (),
    datamodule: pl.LightningDataModule | None = None,
) -> dict[str, Any]:
    """Train and test the run ``cfg`` describes; return (and write) its summary.

    The run folder gets ``config.yaml``, ``logs/metrics.csv`` (per-epoch curves), ``checkpoints/last.ckpt``
    (rewritten after every epoch, shape changes included: resume with ``resume_from=...``), ``final.ckpt``
    and ``summary.json``. Checkpoints are written to a temporary file and renamed, so a failed write
    never replaces a good one; the first failed write stops the run with an ``OSError`` naming the path.
    An exception from a callback (an interrupted sweep trial) ends the run before validation, test and
    ``final.ckpt``: a half-trained model is never written as a result.

    Args:
        cfg: A validated run config.
        run_dir: Where to write; a new timestamped folder under ``cfg.output_dir`` by default.
        callbacks: Extra callbacks (compression callbacks come from ``cfg.compression``).
        loggers: Extra loggers beside the CSV logger.
        datamodule: The data module (default: built from ``cfg.data``; :func:`preflight` returns one
            that has read its files).

    Example:
        >>> from lightning_compress.config import load_config
        >>> quick = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        ...          "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false"]
        >>> cfg = load_config("configs/lenet300_fmnist.yaml", [*quick, f"output_dir={tempfile.mkdtemp()}"])
        >>> import contextlib, io
        >>> with contextlib.redirect_stdout(io.StringIO()):  # the model summary and progress
        ...     summary = train(cfg)
        >>> summary["epochs"], summary["params"]
        (1, 266610)
    """
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = datamodule if datamodule is not None else build_datamodule(cfg.data)
    module = build_module(cfg)
    dense = module.size()
    compression = build_callbacks(cfg.compression)
    # a pattern matching no layer, a target the floors forbid, an epoch never reached: one line, nothing written
    preflight_callbacks(compression, module, cfg.trainer.max_epochs)
    out = Path(run_dir) if run_dir is not None else make_run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    _write_text(out / "config.yaml", to_yaml(cfg))
    trainer = pl.Trainer(
        **trainer_kwargs(cfg.trainer),
        default_root_dir=out,
        callbacks=[*compression, EpochCheckpoint(out / "checkpoints"), *callbacks],
        logger=[CSVLogger(out, name="logs", version=""), *loggers],
        plugins=[AtomicCheckpointIO()],
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.resume_from)
    fit_seconds = time.perf_counter() - start
    # validate the final model: compression at fit end may have changed it after the last validation
    fit_metrics = (
        dict(trainer.validate(module, datamodule=datamodule, verbose=False)[0]) if trainer.max_epochs else {}
    )
    test_metrics = trainer.test(module, datamodule=datamodule, verbose=False)[0] if trainer.max_epochs else {}
    trainer.save_checkpoint(out / "final.ckpt", weights_only=False)
    size = module.size()
    summary: dict[str, Any] = {
        "name": cfg.name,
        "run_dir": str(out),
        "model": cfg.model.class_path or cfg.model.name.value,
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
        _write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    close_process_group(trainer)
    return summary
