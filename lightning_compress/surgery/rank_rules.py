"""The options of :func:`~lightning_compress.surgery.compress_low_rank`: methods, orders, rank rules."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from lightning_compress._checks import ArgumentError

__all__ = ["CalibrationOrder", "LayerResult", "LowRankMethod", "check_budget", "check_rules"]


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


def check_rules(**rules: Any) -> None:
    """Exactly one rank rule (``rank``, ``energy``, ``param_ratio``, ``params``, ``macs``), each in range,
    and a finite ``ridge >= 0``.

    Example:
        >>> check_rules(rank=None, energy=0.9, param_ratio=None, params=None, macs=None, ridge=0.0)
    """
    ridge = rules.pop("ridge")
    given = sorted(k for k, v in rules.items() if v is not None)
    if len(given) != 1:
        raise ArgumentError("rank", f"give exactly one of {', '.join(rules)}, got {given or 'none'}")
    if not math.isfinite(ridge) or ridge < 0:
        raise ArgumentError("ridge", f"ridge must be finite and >= 0, got {ridge!r}")
    if (rank := rules["rank"]) is not None and (
        isinstance(rank, bool) or not isinstance(rank, int) or rank < 1
    ):
        raise ArgumentError("rank", f"rank must be an int >= 1, got {rank!r}")
    for arg in ("energy", "param_ratio"):
        if rules[arg] is not None and not 0 < rules[arg] <= 1:
            raise ArgumentError(arg, f"{arg} must be in (0, 1], got {rules[arg]!r}")


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
