"""Export a trained checkpoint (ours, or one of the user's own LightningModule) as plain PyTorch."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

from lightning_compress.config import ConfigError, build_datamodule, load_config
from lightning_compress.run.compress import check_checkpoint, find_run_config, load_checkpoint
from lightning_compress.surgery import INPUTS_ATTRIBUTE, example_from_spec, export_model, load_compressed

__all__ = ["export_checkpoint", "load_user_checkpoint"]


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
    module = cls(**saved.get("hyper_parameters", {}))
    return load_compressed(module, saved)


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    model_class: str | type[Any] | None = None,
    config: str | Path | None = None,
    normalization: bool = True,
    dynamic_batch: bool = True,
) -> dict[str, Any]:
    """Export ``checkpoint`` to ``out_dir`` with :func:`~lightning_compress.surgery.export_model`.

    A ``train`` checkpoint (no ``model_class``) takes its normalization from the run config and, with
    ``normalization``, bakes it into the program (it then takes raw 0-1 pixels). A checkpoint of the user's
    class (``model_class``) is exported as its ``forward`` is: the user's data pipeline normalizes.

    Example:
        >>> export_checkpoint("/no/such.ckpt", "out")
        Traceback (most recent call last):
        ...
        lightning_compress.config.errors.ConfigError: checkpoint: file not found: '/no/such.ckpt'
    """
    normalize = None
    if model_class is not None:
        module = load_user_checkpoint(checkpoint, model_class)
    else:
        module = load_checkpoint(checkpoint)
        if normalization:
            datamodule = build_datamodule(load_config(config or find_run_config(checkpoint)).data)
            normalize = datamodule.normalization()
    x = module.example_input_array
    if x is None and INPUTS_ATTRIBUTE in module._buffers:
        x = example_from_spec(module._buffers[INPUTS_ATTRIBUTE])
    if not isinstance(x, torch.Tensor):
        raise ConfigError("checkpoint", "export needs a single-tensor example input; the checkpoint has none")
    meta: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "class": f"{type(module).__module__}.{type(module).__qualname__}",
    }
    if isinstance(normalize, tuple) and all(isinstance(v, float) for v in normalize):
        meta["mean"], meta["std"] = normalize
    return export_model(module, out_dir, x, normalize=normalize, dynamic_batch=dynamic_batch, metadata=meta)
