"""Penalties with their proximal steps, attached to a model, with no Lightning in sight.

A regularizer finds what it acts on (:meth:`~Regularizer.attach`), refreshes itself after a shape change,
and offers its penalty, its exact proximal step and a subgradient. The callbacks in
:mod:`lightning_compress.callbacks` schedule them during ``fit``; a plain PyTorch loop calls
:meth:`~Regularizer.prox_` after ``optimizer.step()``.
"""

from lightning_compress.regularizers.base import AttachedRegularizer, Regularizer
from lightning_compress.regularizers.budget import GroupBudget, SizeTarget, size_target
from lightning_compress.regularizers.group_lasso import Cost, GroupLasso
from lightning_compress.regularizers.nuclear_norm import NuclearNorm
from lightning_compress.regularizers.rank_budget import RankBudget

__all__ = [
    "AttachedRegularizer",
    "Cost",
    "GroupBudget",
    "GroupLasso",
    "NuclearNorm",
    "RankBudget",
    "Regularizer",
    "SizeTarget",
    "size_target",
]
