"""The ``compression.pruning`` section: :class:`~lightning_compress.callbacks.StructuredPruning`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from lightning.pytorch.callbacks import Callback

from lightning_compress.callbacks import StructuredPruning
from lightning_compress.config._plain import plain
from lightning_compress.surgery import GroupMode

__all__ = ["PruningConfig", "build_pruning"]


@dataclass
class PruningConfig:
    """:class:`~lightning_compress.callbacks.StructuredPruning` arguments.

    Example:
        >>> PruningConfig(every_n_epochs=2).at_fit_end
        True
    """

    epochs: list[int] = field(default_factory=list)
    every_n_epochs: Optional[int] = None  # noqa: UP045
    at_fit_end: bool = True
    threshold: float = 0.0
    relative_threshold: float = 0.0
    min_width: int = 1
    groups: Optional[GroupMode] = None  # noqa: UP045  (None: GroupSparsity's groups)
    include: Optional[list[str]] = None  # noqa: UP045
    exclude: list[str] = field(default_factory=list)
    fold_constants: bool = True
    input_layers: list[str] = field(default_factory=list)


def build_pruning(cfg: PruningConfig) -> list[Callback]:
    """The section's callback.

    Example:
        >>> build_pruning(PruningConfig(min_width=2))[0].min_width
        2
    """
    return [StructuredPruning(**plain(cfg))]
