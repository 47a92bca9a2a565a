"""Helpers shared by the compression callbacks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_compress.surgery.groups import GROUP_MODES, LayerSelector

__all__ = ["check_groups_args", "example_inputs"]


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


def check_nonneg(value: float, name: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")


def check_groups_args(
    groups: str, include: Sequence[LayerSelector] | None, exclude: Sequence[LayerSelector]
) -> None:
    if groups not in GROUP_MODES:
        raise ValueError(f"groups must be one of {GROUP_MODES}, got {groups=!r}")
    for name, value in (("include", include or []), ("exclude", exclude)):
        if isinstance(value, (str, type)):
            raise TypeError(f"{name} must be a list of name patterns or module types, got {value!r}")
