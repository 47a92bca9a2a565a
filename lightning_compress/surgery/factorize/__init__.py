"""Splitting layers in two: the split and its record, rank rules, layers calibrated on data (DALR, SVD)."""

from lightning_compress.surgery.factorize.calibrated import compress_low_rank
from lightning_compress.surgery.factorize.flexible import (
    FlexibleConv2d,
    FlexibleLinear,
    FlexibleMixin,
    flexible_layers,
    make_flexible,
    make_plain,
)
from lightning_compress.surgery.factorize.layers import low_rank_layers
from lightning_compress.surgery.factorize.rank_rules import (
    RANK_RULES,
    CalibrationOrder,
    LayerResult,
    LowRankMethod,
    RankRule,
    check_budget,
    check_ridge,
)
from lightning_compress.surgery.factorize.split import factorize_layer, factorized, replay_factorize

__all__ = [
    "RANK_RULES",
    "CalibrationOrder",
    "FlexibleConv2d",
    "FlexibleLinear",
    "FlexibleMixin",
    "LayerResult",
    "LowRankMethod",
    "RankRule",
    "check_budget",
    "check_ridge",
    "compress_low_rank",
    "factorize_layer",
    "factorized",
    "flexible_layers",
    "low_rank_layers",
    "make_flexible",
    "make_plain",
    "replay_factorize",
]
