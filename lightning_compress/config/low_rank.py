"""The ``compression.low_rank`` section: :class:`~lightning_compress.callbacks.LowRank`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from lightning.pytorch.callbacks import Callback

from lightning_compress.callbacks import LowRank, ProxSchedule
from lightning_compress.config._plain import plain

__all__ = ["LowRankConfig", "build_low_rank"]


@dataclass
class LowRankConfig:
    """:class:`~lightning_compress.callbacks.LowRank` arguments (layer names are the LightningModule's).

    Example:
        >>> LowRankConfig(strength=0.01).every_n_steps
        100
    """

    strength: float = 1e-3
    layer_strengths: dict[str, float] = field(default_factory=dict)
    include: Optional[list[str]] = None  # noqa: UP045
    exclude: list[str] = field(default_factory=list)
    schedule: ProxSchedule = ProxSchedule.step
    every_n_steps: int = 100
    warmup_epochs: int = 0
    ramp_epochs: int = 0
    stop_epoch: Optional[int] = None  # noqa: UP045
    split_epochs: list[int] = field(default_factory=list)
    split_every_n_epochs: Optional[int] = None  # noqa: UP045
    split_at_fit_end: bool = True
    energy: Optional[float] = None  # noqa: UP045
    param_ratio: Optional[float] = None  # noqa: UP045
    rel_tol: float = 1e-5
    randomized_svd: bool = True
    only_if_faster: bool = False
    speed_batch: int = 1


def build_low_rank(cfg: LowRankConfig) -> list[Callback]:
    """The section's callback.

    Example:
        >>> build_low_rank(LowRankConfig(strength=0.01))
        [LowRank(strength=0.01, every_n_steps=100, schedule='step')]
    """
    return [LowRank(**plain(cfg))]
