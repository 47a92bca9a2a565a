"""Helpers shared by the compression callbacks."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

__all__ = ["example_inputs"]


def example_inputs(pl_module: pl.LightningModule) -> Any:
    """The module's ``example_input_array`` on its device (needed to trace the model)."""
    x = pl_module.example_input_array
    if x is None:
        raise ValueError(
            f"{type(pl_module).__name__} has no example_input_array: set it (e.g. a batch of one) so the "
            "model can be traced to find its neuron groups"
        )
    if isinstance(x, torch.Tensor):
        return x.to(pl_module.device)
    return tuple(t.to(pl_module.device) for t in x) if isinstance(x, (tuple, list)) else x
