"""Helpers shared by the compression callbacks: the example input a model is traced with."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from lightning_compress._checks import ArgumentError
from lightning_compress.surgery import INPUTS_ATTRIBUTE, batch_input, enable_history_restore, store_example

__all__ = ["TracingCallback", "example_inputs", "has_example", "remember_example", "use_example"]


def _to(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (tuple, list)):
        return tuple(_to(t, device) for t in x)
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x


def has_example(pl_module: pl.LightningModule) -> bool:
    return pl_module.example_input_array is not None


def example_inputs(pl_module: pl.LightningModule) -> Any:
    """The module's ``example_input_array`` on its device (set from the first training batch if missing).

    Raises:
        ValueError: when there is none yet (before the first batch of a module that sets none).
    """
    x = pl_module.example_input_array
    if x is None:
        raise ValueError(
            f"{type(pl_module).__name__} has no example input yet: it is taken from the first training batch; "
            "to trace the model earlier, set example_input_array (a batch of one) or pass example_input= "
            "to the callback"
        )
    return _to(x, pl_module.device)


def check_input_key(input_key: Any) -> str | None:
    """``input_key`` if it is ``None`` or a string; else the one-line argument error."""
    if input_key is not None and not isinstance(input_key, str):
        raise ArgumentError("input_key", f"input_key must be a string, got {input_key!r}")
    return input_key


def use_example(pl_module: pl.LightningModule, given: Any) -> None:
    """Set the module's example input from a callback's ``example_input`` argument, unless it has one."""
    if given is not None and pl_module.example_input_array is None:
        pl_module.example_input_array = given


def remember_example(pl_module: pl.LightningModule, batch: Any = None, key: str | None = None) -> None:
    """Take the example input from ``batch`` when the module has none, and keep its shape in the state
    dict (so a compressed checkpoint replays without one)."""
    if pl_module.example_input_array is None and batch is not None:
        pl_module.example_input_array = batch_input(batch, key)
    if INPUTS_ATTRIBUTE not in pl_module._buffers and pl_module.example_input_array is not None:
        store_example(pl_module, example_inputs(pl_module))


class TracingCallback(Callback):
    """Base of the callbacks that trace the model: the example input (given, the module's, or taken from the
    first training batch) and the history replay on checkpoint load."""

    example_input: Any = None
    batch_key: str | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        use_example(pl_module, self.example_input)
        enable_history_restore(pl_module, lambda: example_inputs(pl_module))

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.example_input_array is None or INPUTS_ATTRIBUTE not in pl_module._buffers:
            remember_example(pl_module, batch, self.batch_key)
