"""The options of :func:`~lightning_compress.surgery.compress_low_rank`: methods, orders, rank rules."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, Literal

from lightning_compress._checks import ArgumentError, check_int

__all__ = [
    "RANK_RULES",
    "CalibrationOrder",
    "LayerResult",
    "LowRankMethod",
    "RankRule",
    "check_budget",
    "check_ridge",
]


class LowRankMethod(str, Enum):
    """How a layer's two factors are found.

    Example:
        >>> LowRankMethod("svd_bias").name
        'svd_bias'
    """

    dalr = "dalr"  # on the data: min ||W X - A B X|| (Masana et al. 2017)
    dalr_bias = "dalr_bias"  # DALR on the centered inputs, the bias absorbing their mean
    svd = "svd"  # truncated SVD of the weight
    svd_bias = "svd_bias"  # truncated SVD, the bias absorbing the residual's mean effect


LowRankMethodName = Literal["dalr", "dalr_bias", "svd", "svd_bias"]
"""The values of :class:`LowRankMethod`, for signatures that command-line parsers read (``Literal`` choices)."""


class CalibrationOrder(str, Enum):
    """Which inputs calibrate each layer.

    Example:
        >>> CalibrationOrder("sequential") is CalibrationOrder.sequential
        True
    """

    original = "original"  # every layer on the original model's inputs (one pass over the data)
    sequential = "sequential"  # each on the inputs the already compressed layers before it produce
    corrected = "corrected"  # as sequential, but fitted to the original network's outputs of the layer


CalibrationOrderName = Literal["original", "sequential", "corrected"]
"""The values of :class:`CalibrationOrder`, for signatures that command-line parsers read (``Literal`` choices)."""


@dataclass
class LayerResult:
    """What :func:`compress_low_rank` did to one layer.

    Attributes:
        name: The layer's qualified name.
        shape: ``(m, n)``, its weight as a matrix.
        rank: The rank it was split at, or ``None`` (left dense: a split would not save anything).
        params_before: Weight parameters before (``m n``).
        params_after: Weight parameters after (``rank (m + n)``, or ``m n`` when dense).
        relative_error: ``||W X - A B X||^2 / ||W X||^2`` on the calibration data (``None`` without it).

    Example:
        >>> LayerResult("fc1", (300, 784), 20, 235_200, 21_680).params_after
        21680
    """

    name: str
    shape: tuple[int, int]
    rank: int | None
    params_before: int
    params_after: int
    relative_error: float | None = None


@dataclass(frozen=True)
class RankRule:
    """How ranks are chosen: exactly one of five rules, checked when made.

    The one value type every path that picks ranks uses (:func:`compress_low_rank`, the
    ``LowRankCompression`` callback, its config section and the ``compress`` command's flags, which are
    this class's fields).

    Attributes:
        params: Budget for all compressed layers: a share (<= 1) of their weights or a count.
        macs: Instead, a budget of their MACs per sample (a share or a count).
        rank: Instead, one rank for every layer.
        energy: Instead, per layer the share of the output energy kept.
        param_ratio: Instead, per layer the share of its weights kept.

    Example:
        >>> RankRule(params=0.1).given
        {'params': 0.1}
        >>> RankRule(rank=4, energy=0.9)
        Traceback (most recent call last):
        ...
        lightning_compress._checks.ArgumentError: give exactly one of params, macs, rank, energy, param_ratio, got ['energy', 'rank']
    """

    params: float | None = None
    macs: float | None = None
    rank: int | None = None
    energy: float | None = None
    param_ratio: float | None = None

    def __post_init__(self) -> None:
        given = sorted(self.given)
        if len(given) != 1:
            raise ArgumentError("rank", f"give exactly one of {', '.join(RANK_RULES)}, got {given or 'none'}")
        check_int(self.rank, "rank", 1, optional=True)
        for arg in ("energy", "param_ratio"):
            value = getattr(self, arg)
            if value is not None and not 0 < value <= 1:
                raise ArgumentError(arg, f"{arg} must be in (0, 1], got {value!r}")
        for arg in ("params", "macs"):
            value = getattr(self, arg)
            if value is not None and (isinstance(value, bool) or not value > 0):
                raise ArgumentError(arg, f"{arg} must be > 0 (a share <= 1 or a count), got {value!r}")

    @property
    def given(self) -> dict[str, Any]:
        """The rule that is set, as ``{name: value}``."""
        return {k: getattr(self, k) for k in RANK_RULES if getattr(self, k) is not None}


RANK_RULES = tuple(f.name for f in fields(RankRule))
"""The names of the rank rules, in the order of :class:`RankRule`'s fields."""


def check_ridge(ridge: float) -> None:
    """A finite ``ridge >= 0``, or an :class:`ArgumentError`.

    Example:
        >>> check_ridge(-1.0)
        Traceback (most recent call last):
        ...
        lightning_compress._checks.ArgumentError: ridge must be finite and >= 0, got -1.0
    """
    if not math.isfinite(ridge) or ridge < 0:
        raise ArgumentError("ridge", f"ridge must be finite and >= 0, got {ridge!r}")


def check_budget(value: float | None, argument: str, total: float) -> float | None:
    """A budget as a count: ``value`` is a share of ``total`` (<= 1) or a count (> 1), at most ``total``.

    Example:
        >>> check_budget(0.25, "params", 1000.0), check_budget(300, "params", 1000.0)
        (250.0, 300.0)
    """
    if value is None:
        return None
    if isinstance(value, bool) or not value > 0:
        raise ArgumentError(argument, f"{argument} must be > 0 (a share <= 1 or a count), got {value!r}")
    budget = float(value) * total if value <= 1 else float(value)
    if budget > total:
        raise ArgumentError(argument, f"{argument}={value} is larger than the layers' {total:,.0f}")
    return budget
