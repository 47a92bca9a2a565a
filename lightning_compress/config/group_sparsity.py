"""The ``compression.group_sparsity`` section: :class:`~lightning_compress.callbacks.GroupSparsity`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from lightning.pytorch.callbacks import Callback

from lightning_compress.callbacks import GroupSparsity, ProxSchedule
from lightning_compress.config._plain import plain
from lightning_compress.regularizers import Cost
from lightning_compress.surgery import GroupMode

__all__ = ["GroupSparsityConfig", "build_group_sparsity"]

# OmegaConf resolves ``Optional[X]`` annotations at runtime: keep ``typing.Optional`` in the schemas.


@dataclass
class GroupSparsityConfig:
    """:class:`~lightning_compress.callbacks.GroupSparsity` arguments (layer names are the LightningModule's,
    e.g. ``model.1``).

    Example:
        >>> GroupSparsityConfig(strength=0.01).schedule.value
        'step'
    """

    strength: float = 1e-3
    l1_ratio: float = 0.0
    layer_strengths: dict[str, float] = field(default_factory=dict)
    groups: GroupMode = GroupMode.incoming
    include: Optional[list[str]] = None  # noqa: UP045
    exclude: list[str] = field(default_factory=list)
    schedule: ProxSchedule = ProxSchedule.step
    every_n_steps: int = 1
    warmup_epochs: int = 0
    ramp_epochs: int = 0
    stop_epoch: Optional[int] = None  # noqa: UP045
    input_layers: list[str] = field(default_factory=list)
    input_strength: Optional[float] = None  # noqa: UP045
    cost: Cost = Cost.params
    cost_exponent: float = 1.0
    keep_ratio: float = 0.0
    log_effective_size: bool = True


def build_group_sparsity(cfg: GroupSparsityConfig) -> list[Callback]:
    """The section's callback.

    Example:
        >>> build_group_sparsity(GroupSparsityConfig(strength=0.01))
        [GroupSparsity(strength=0.01, l1_ratio=0.0, groups='incoming', schedule='step')]
    """
    return [GroupSparsity(**plain(cfg))]
