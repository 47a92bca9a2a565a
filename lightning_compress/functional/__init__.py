"""Pure tensor math: penalties, proximal operators, low-rank solves, size counts."""

from lightning_compress.functional.group_lasso import (
    GroupPiece,
    batched_group_prox_,
    group_lasso_penalty,
    prox_sparse_group_lasso,
    sliced_group_sizes,
    sliced_group_sq_norms,
    sliced_penalty,
    sliced_penalty_grad_,
    sliced_prox_,
    soft_threshold,
    trimmed,
    trimmed_prox_scores,
)
from lightning_compress.functional.selection import select_removable
from lightning_compress.functional.size import count_params_and_macs

__all__ = [
    "GroupPiece",
    "batched_group_prox_",
    "count_params_and_macs",
    "group_lasso_penalty",
    "prox_sparse_group_lasso",
    "select_removable",
    "sliced_group_sizes",
    "sliced_group_sq_norms",
    "sliced_penalty",
    "sliced_penalty_grad_",
    "sliced_prox_",
    "soft_threshold",
    "trimmed",
    "trimmed_prox_scores",
]
