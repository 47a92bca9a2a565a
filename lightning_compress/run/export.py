"""Export a trained checkpoint (ours, or one of the user's own LightningModule) as plain PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lightning_compress.config import ConfigError, build_datamodule, load_config
from lightning_compress.run.compress import (
    find_run_config,
    load_checkpoint,
    load_user_checkpoint,
    writable_folder,
)
from lightning_compress.surgery import INPUTS_ATTRIBUTE, example_from_spec, export_model

__all__ = ["export_checkpoint"]


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
    writable_folder(out_dir, "--out")
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
