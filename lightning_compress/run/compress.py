"""Compress a trained checkpoint to low rank on calibration data, optionally fine-tune, and write it back."""

from __future__ import annotations

import copy
import importlib
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_compress._checks import ArgumentError
from lightning_compress.callbacks import AtomicCheckpointIO, LowRankCompression
from lightning_compress.config import ConfigError, RunConfig, build_datamodule, load_config
from lightning_compress.models import Classifier
from lightning_compress.surgery import count_params_and_macs, layer_widths, load_compressed
from lightning_compress.surgery.base import model_input

__all__ = [
    "check_checkpoint",
    "compress_checkpoint",
    "find_run_config",
    "load_checkpoint",
    "load_user_checkpoint",
    "writable_folder",
]


def find_run_config(checkpoint: str | Path) -> Path:
    """The ``config.yaml`` of the run that wrote ``checkpoint`` (``final.ckpt`` or ``checkpoints/last.ckpt``).

    Example:
        >>> find_run_config("/no/such/run/final.ckpt")
        Traceback (most recent call last):
        ...
        lightning_compress.config.errors.ConfigError: --config: no config.yaml beside '/no/such/run/final.ckpt' or its parent: give --config

    Raises:
        ConfigError: if there is none (give the run config explicitly).
    """
    path = Path(checkpoint).resolve()
    for folder in (path.parent, path.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    raise ConfigError("--config", f"no config.yaml beside {str(checkpoint)!r} or its parent: give --config")


def check_checkpoint(checkpoint: str | Path) -> None:
    """A one-line :class:`ConfigError` unless ``checkpoint`` is a file that could be a checkpoint (not a
    folder, not a YAML config given by mistake).

    Example:
        >>> check_checkpoint("configs/lenet300_fmnist.yaml")
        Traceback (most recent call last):
        ...
        lightning_compress.config.errors.ConfigError: checkpoint: 'configs/lenet300_fmnist.yaml' is a YAML config, not a checkpoint: give the final.ckpt (or checkpoints/last.ckpt) that 'train' wrote
    """
    path = Path(checkpoint)
    if path.is_dir():
        raise ConfigError("checkpoint", f"{str(checkpoint)!r} is a folder: give the checkpoint file in it")
    if not path.is_file():
        raise ConfigError("checkpoint", f"file not found: {str(checkpoint)!r}")
    if path.suffix in (".yaml", ".yml"):
        raise ConfigError(
            "checkpoint",
            f"{str(checkpoint)!r} is a YAML config, not a checkpoint: give the final.ckpt (or "
            "checkpoints/last.ckpt) that 'train' wrote",
        )


def load_checkpoint(checkpoint: str | Path) -> Classifier:
    """The :class:`~lightning_compress.models.Classifier` a ``train`` checkpoint holds, shape changes replayed.

    Raises:
        ConfigError: for a missing file or one that is not a readable checkpoint.

    Example:
        >>> load_checkpoint("/no/such.ckpt")
        Traceback (most recent call last):
        ...
        lightning_compress.config.errors.ConfigError: checkpoint: file not found: '/no/such.ckpt'
    """
    check_checkpoint(checkpoint)
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file fails in many ways inside torch.load
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(
            "checkpoint", f"{str(checkpoint)!r} is not a readable checkpoint: {first}"
        ) from None
    _check_lightning(saved, checkpoint)
    return Classifier.load_from_checkpoint(checkpoint, map_location="cpu")


def _check_lightning(saved: Any, checkpoint: str | Path) -> None:
    if not (isinstance(saved, dict) and "state_dict" in saved and "pytorch-lightning_version" in saved):
        raise ConfigError(
            "checkpoint",
            f"{str(checkpoint)!r} is a torch file but not a Lightning checkpoint (it has no state_dict and "
            "pytorch-lightning_version): give the final.ckpt that 'train' wrote, or one of Trainer.save_checkpoint",
        )


def writable_folder(folder: str | Path, flag: str) -> None:
    """A one-line :class:`ConfigError` naming ``flag`` unless a file can be created in ``folder`` (or, when
    it does not exist yet, in its nearest existing parent): a read-only disk or folder is found before
    any work, not at the end.

    Example:
        >>> writable_folder(Path(tempfile.mkdtemp()) / "not" / "yet", "--out")  # its parent takes a file
    """
    path = Path(folder).absolute()
    while not path.is_dir() and path != path.parent:
        path = path.parent
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as err:
        raise ConfigError(flag, f"cannot write in {str(path)!r}: {err.strerror or err}") from None


def _import_class(path: str) -> type[Any]:
    module_name, sep, name = path.replace(":", ".").rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name) if sep else None
    except ImportError as err:
        raise ConfigError("--model-class", f"cannot import {path!r}: {err}") from None
    if not isinstance(found, type):
        raise ConfigError("--model-class", f"{path!r} is not a class (give package.module.ClassName)")
    return found


def load_user_checkpoint(checkpoint: str | Path, model_class: str | type[Any]) -> Any:
    """A checkpoint of the user's own LightningModule class (built from the saved hyperparameters), its
    compression history replayed; ``model_class`` is the class or its import path (``pkg.mod.UserNet``).

    Example:
        >>> load_user_checkpoint("/no/such.ckpt", "torch.nn.Linear")
        Traceback (most recent call last):
        ...
        lightning_compress.config.errors.ConfigError: checkpoint: file not found: '/no/such.ckpt'
    """
    check_checkpoint(checkpoint)
    cls = _import_class(model_class) if isinstance(model_class, str) else model_class
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    _check_lightning(saved, checkpoint)
    module = cls(**saved.get("hyper_parameters", {}))
    return load_compressed(module, saved)


def _size(module: Any, datamodule: Any) -> dict[str, int]:
    """Parameters and MACs per sample: the Classifier's own count, else counted on one input of the data."""
    if isinstance(module, Classifier):
        return module.size()
    example = model_input(next(iter(datamodule.val_dataloader())))[:1]
    params, macs = count_params_and_macs(module, example.to(next(module.parameters()).device))
    return {"params": params, "macs": macs}


def compress_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    config: str | Path | None = None,
    overrides: tuple[str, ...] = (),
    finetune_epochs: int = 0,
    finetune_lr: float | None = None,
    model_class: str | type[Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Load ``checkpoint``, compress it as :class:`~lightning_compress.callbacks.LowRankCompression` would
    at fit end, fine-tune for ``finetune_epochs``, test before and after, and write the compressed
    checkpoint to ``out``.

    ``model_class`` (a class or its import path) loads a checkpoint of the user's own LightningModule
    (its data from ``config``, which is then required; accuracy is reported when the class has a
    ``test_step`` that logs ``test/acc``). ``options`` are the callback's arguments (``method``, a rank rule such as ``params`` or ``rank``,
    ``data``: the run's ``"train"`` or ``"val"`` split, ...), checked before any work.
    Returns the summary (also written beside ``out`` as ``<out>.json``).

    Raises:
        ConfigError: for a bad argument (named as its command-line flag), a missing file or config.

    Example:
        >>> import tempfile
        >>> from lightning_compress.run import train
        >>> quick = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        ...          "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false"]
        >>> folder = tempfile.mkdtemp()
        >>> cfg = load_config("configs/lenet300_fmnist.yaml", [*quick, f"output_dir={folder}"])
        >>> import contextlib, io
        >>> with contextlib.redirect_stdout(io.StringIO()):  # the model summary and progress
        ...     final = train(cfg)["final_checkpoint"]
        ...     summary = compress_checkpoint(final, f"{folder}/small.ckpt", method="svd", rank=10)
        >>> summary["params_before"], summary["params"]
        (266610, 16250)
    """
    try:
        callback = LowRankCompression(**{k: v for k, v in options.items() if v is not None})
    except ArgumentError as err:
        raise ConfigError(f"--{err.argument.replace('_', '-')}", str(err)) from None
    if callable(callback.data):
        raise ConfigError("--data", "must be 'train' or 'val' here")
    check_checkpoint(checkpoint)
    if model_class is not None and config is None:
        raise ConfigError(
            "--config", "give the run config whose data calibrates your --model-class checkpoint"
        )
    cfg: RunConfig = load_config(config or find_run_config(checkpoint), list(overrides))
    if finetune_epochs < 0:
        raise ConfigError("--finetune-epochs", f"must be >= 0, got {finetune_epochs}")
    target = Path(out)
    if not target.parent.is_dir():
        raise ConfigError("--out", f"folder not found: {str(target.parent)!r}")
    writable_folder(target.parent, "--out")
    module = (
        load_checkpoint(checkpoint) if model_class is None else load_user_checkpoint(checkpoint, model_class)
    )
    datamodule = build_datamodule(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    quiet: dict[str, Any] = {
        "logger": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "enable_progress_bar": cfg.trainer.enable_progress_bar,
    }
    tested = type(module).test_step is not pl.LightningModule.test_step
    # compressed first, on a copy: a budget the model cannot meet is one line before the test runs
    original, module = module, copy.deepcopy(module)
    loader = datamodule.val_dataloader() if callback.data == "val" else datamodule.train_dataloader()
    start = time.perf_counter()
    try:
        results = callback.apply(module, loader, progress=cfg.trainer.enable_progress_bar)
    except ArgumentError as err:
        raise ConfigError(f"--{err.argument.replace('_', '-')}", str(err)) from None
    except ValueError as err:  # a budget the model cannot meet (below rank 1 in every layer)
        rule = next(iter(callback.rule.given))
        raise ConfigError(f"--{rule.replace('_', '-')}", str(err)) from None
    seconds = time.perf_counter() - start
    trainer = pl.Trainer(
        accelerator=cfg.trainer.accelerator, devices=1, plugins=[AtomicCheckpointIO()], **quiet
    )
    before = trainer.test(original, datamodule=datamodule, verbose=False)[0] if tested else {}
    size_before = _size(original, datamodule)
    del original
    if finetune_epochs:
        if finetune_lr is not None and "lr" in module.hparams:
            module.hparams["lr"] = finetune_lr
        trainer = pl.Trainer(
            accelerator=cfg.trainer.accelerator,
            devices=1,
            max_epochs=finetune_epochs,
            plugins=[AtomicCheckpointIO()],
            **quiet,
        )
        trainer.fit(module, datamodule=datamodule)
    after = trainer.test(module, datamodule=datamodule, verbose=False)[0] if tested else {}
    size = _size(module, datamodule)
    if trainer.model is None:  # neither tested nor fine-tuned: attached only to be written
        trainer.strategy.connect(module)
    trainer.save_checkpoint(target, weights_only=False)
    summary = {
        "checkpoint": str(checkpoint),
        "out": str(target),
        "compress": {
            "method": callback.method.value,
            **callback.rule.given,
            "data": callback.data,
            "order": callback.order.value,
        },
        "finetune_epochs": finetune_epochs,
        "compress_seconds": round(seconds, 3),
        "test_acc_before": float(before["test/acc"]) if "test/acc" in before else None,
        "test_acc": float(after["test/acc"]) if "test/acc" in after else None,
        "params_before": size_before["params"],
        "params": size["params"],
        "macs_before": size_before["macs"],
        "macs": size["macs"],
        "layers": [asdict(r) for r in results],
        "widths": layer_widths(module),
    }
    target.with_suffix(target.suffix + ".json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
