"""The ``compression.low_rank_compression`` section: :class:`~lightning_compress.callbacks.LowRankCompression`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from lightning.pytorch.callbacks import Callback

from lightning_compress.callbacks import LowRankCompression
from lightning_compress.config._plain import plain
from lightning_compress.surgery import CalibrationOrder, LowRankMethod

__all__ = ["LowRankCompressionConfig", "build_low_rank_compression"]


@dataclass
class LowRankCompressionConfig:
    """:class:`~lightning_compress.callbacks.LowRankCompression` arguments (one rank rule).

    ``data`` is ``"train"`` or ``"val"``: the run's validation split is held apart from the test set,
    so it serves as the calibration split.

    Example:
        >>> LowRankCompressionConfig(params=0.2).method.value
        'dalr'
    """

    method: LowRankMethod = LowRankMethod.dalr
    params: Optional[float] = None  # noqa: UP045
    macs: Optional[float] = None  # noqa: UP045
    rank: Optional[int] = None  # noqa: UP045
    energy: Optional[float] = None  # noqa: UP045
    param_ratio: Optional[float] = None  # noqa: UP045
    include: Optional[list[str]] = None  # noqa: UP045
    exclude: list[str] = field(default_factory=list)
    ridge: float = 0.0
    order: CalibrationOrder = CalibrationOrder.original
    at_epoch: Optional[int] = None  # noqa: UP045
    data: str = "train"
    max_batches: Optional[int] = None  # noqa: UP045


def build_low_rank_compression(cfg: LowRankCompressionConfig) -> list[Callback]:
    """The section's callback.

    Example:
        >>> build_low_rank_compression(LowRankCompressionConfig(method=LowRankMethod.svd, rank=8))
        [LowRankCompression(method='svd', rank=8, at_epoch=None)]
    """
    return [LowRankCompression(**plain(cfg))]
