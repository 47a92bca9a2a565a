"""A LightningModule mixin: a compressed checkpoint loads into the user's own module class."""

from __future__ import annotations

from typing import Any

from lightning_compress.callbacks._common import example_inputs
from lightning_compress.surgery import enable_history_restore

__all__ = ["CompressibleMixin"]


class CompressibleMixin:
    """Put first in a LightningModule's bases so ``load_from_checkpoint`` and ``trainer.validate(ckpt_path=...)``
    (``test``, ``predict``, ``fit`` resume) rebuild the compressed shapes before loading the weights.

    Without it, a module that was compressed by this library's callbacks fails to load with
    ``Unexpected key(s) in state_dict: "compression_history"`` and size mismatches. The example input the
    history is replayed with is the module's ``example_input_array`` or, when it has none, the one the
    checkpoint keeps.

    Example:
        >>> import lightning.pytorch as pl
        >>> from torch import nn
        >>> class UserNet(CompressibleMixin, pl.LightningModule):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> UserNet().on_load_checkpoint({"state_dict": {}})
    """

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        enable_history_restore(self, lambda: example_inputs(self))  # type: ignore[arg-type]
        super().on_load_checkpoint(checkpoint)  # type: ignore[misc]
