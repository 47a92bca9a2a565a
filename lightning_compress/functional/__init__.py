"""Pure tensor math: penalties, proximal operators, low-rank solves, selection rules.

Nothing here knows about modules, Lightning or Torch-Pruning: functions take and return tensors.
"""

from lightning_compress.functional.budget import BudgetError, closing_unit, fewest_to_budget
from lightning_compress.functional.dalr import (
    bias_compensation,
    dalr_factors,
    output_error,
    output_moments,
    output_spectrum,
)
from lightning_compress.functional.group_lasso import (
    check_strength,
    group_lasso_penalty,
    prox_sparse_group_lasso,
    soft_threshold,
    trimmed,
    trimmed_prox_scores,
)
from lightning_compress.functional.low_rank import (
    as_matrix,
    break_even_rank,
    choose_rank,
    nuclear_norm,
    shrink_spectrum,
    singular_value_threshold,
    split_rank,
    truncated_svd,
)
from lightning_compress.functional.rank_budget import LayerSpectrum, allocate_ranks
from lightning_compress.functional.selection import even_per_block, select_removable
from lightning_compress.functional.sliced import (
    GroupPiece,
    batched_group_prox_,
    sliced_group_sizes,
    sliced_group_sq_norms,
    sliced_penalty,
    sliced_penalty_grad_,
    sliced_prox_,
)

__all__ = [
    "BudgetError",
    "GroupPiece",
    "LayerSpectrum",
    "allocate_ranks",
    "as_matrix",
    "batched_group_prox_",
    "bias_compensation",
    "break_even_rank",
    "check_strength",
    "choose_rank",
    "closing_unit",
    "dalr_factors",
    "even_per_block",
    "fewest_to_budget",
    "group_lasso_penalty",
    "nuclear_norm",
    "output_error",
    "output_moments",
    "output_spectrum",
    "prox_sparse_group_lasso",
    "select_removable",
    "shrink_spectrum",
    "singular_value_threshold",
    "sliced_group_sizes",
    "sliced_group_sq_norms",
    "sliced_penalty",
    "sliced_penalty_grad_",
    "sliced_prox_",
    "soft_threshold",
    "split_rank",
    "trimmed",
    "trimmed_prox_scores",
    "truncated_svd",
]
