"""Group lasso and sparse group lasso (Alvarez & Salzmann, NIPS 2016): penalties and proximal operators.

This is the *matrix* form, with groups as the rows of an ``(N, P)`` matrix: the exact reference. The
*sliced* form (:mod:`lightning_compress.functional.sliced`) acts on parameters where they live.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "check_strength",
    "group_lasso_penalty",
    "prox_sparse_group_lasso",
    "soft_threshold",
    "trimmed",
    "trimmed_prox_scores",
]


def soft_threshold(x: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """Elementwise ``sign(x) * max(|x| - tau, 0)``, the prox of ``tau * ||x||_1``.

    Example:
        >>> soft_threshold(torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5]), 0.5)
        tensor([-1.5000,  0.0000,  0.0000,  0.0000,  1.0000])
    """
    # x - clip(x, -tau, tau): the same values as sign(x) * max(|x| - tau, 0) in two passes instead of five
    if isinstance(tau, torch.Tensor):
        return x - torch.minimum(torch.maximum(x, -tau), tau)
    return x - x.clamp(-tau, tau)


def trimmed(values: torch.Tensor, scores: torch.Tensor, keep: int) -> torch.Tensor:
    """``values`` (one per group) with the entries of the ``keep`` groups of largest ``scores`` set to zero.

    The trimmed group lasso (Yun et al., NeurIPS 2019, "Trimming the l1 regularizer") penalizes all
    groups but ``keep`` of them: with per-group strengths or thresholds passed through this, the
    survivors are not shrunk, and a layer cannot be driven below ``keep`` groups. Which groups go free:
    for the penalty, those with the largest weighted norm (score ``P_g ||w_g||^2`` under ``sqrt(P_g)``
    weights, or the squared norm when all weights are equal); for the prox, those whose penalty would
    cost the most (:func:`trimmed_prox_scores`). Ties are broken arbitrarily (all-zero groups stay zero
    either way).

    Example:
        >>> trimmed(torch.tensor([1.0, 1.0, 1.0, 1.0]), torch.tensor([0.5, 4.0, 0.0, 2.0]), keep=2)
        tensor([1., 0., 1., 0.])
    """
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep=}")
    if keep == 0:
        return values
    out = values.clone()
    out[scores.topk(min(keep, scores.numel())).indices] = 0
    return out


def trimmed_prox_scores(sq_norms: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """What each group's penalty costs in the group soft-threshold's objective, at threshold ``tau``.

    ``min_w 0.5 ||w - v||^2 + tau ||w||`` is ``tau ||v|| - tau^2 / 2`` when ``||v|| > tau`` and
    ``||v||^2 / 2`` otherwise; unpenalized it is 0. The exact prox of the trimmed penalty frees the
    ``keep`` groups where this is largest: the largest norms when ``tau`` is the same for all groups,
    not otherwise (groups of unequal size, per-group strengths).

    Example:
        >>> trimmed_prox_scores(torch.tensor([1.0, 0.81]), torch.tensor([0.1, 0.8]))  # the smaller norm costs more
        tensor([0.0950, 0.4000])
    """
    norms = sq_norms.sqrt()
    return torch.where(norms > tau, tau * norms - tau.square() / 2, sq_norms / 2)


def check_strength(lam: float, alpha: float) -> None:
    """Raise ``ValueError`` unless ``lam`` is finite and >= 0 and ``alpha`` is in [0, 1].

    Example:
        >>> check_strength(0.1, 1.5)
        Traceback (most recent call last):
        ...
        ValueError: the L1 mix must be in [0, 1], got alpha=1.5
    """
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"strength must be finite and >= 0, got {lam=}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"the L1 mix must be in [0, 1], got {alpha=}")


def group_lasso_penalty(groups: torch.Tensor, lam: float, alpha: float = 0.0) -> torch.Tensor:
    """``(1 - alpha) * lam * sqrt(P) * sum_n ||g_n||_2 + alpha * lam * ||G||_1`` for groups as rows of ``G``.

    Example:
        >>> group_lasso_penalty(torch.tensor([[3.0, 4.0], [0.0, 0.0]]), lam=1.0)
        tensor(7.0711)
    """
    check_strength(lam, alpha)
    if groups.ndim != 2:
        raise ValueError(f"groups must be an (N, P) matrix, got shape {tuple(groups.shape)}")
    weight = (1 - alpha) * lam * math.sqrt(groups.shape[1])
    return weight * groups.norm(dim=1).sum() + alpha * lam * groups.abs().sum()


def prox_sparse_group_lasso(
    groups: torch.Tensor, step: float, lam: float, alpha: float = 0.0
) -> torch.Tensor:
    """Exact proximal operator of ``step *`` :func:`group_lasso_penalty`, group by group.

    Soft-threshold every entry by ``step * alpha * lam``, then scale each row by
    ``max(0, 1 - step * (1 - alpha) * lam * sqrt(P) / ||row||_2)``.

    Example:
        >>> prox_sparse_group_lasso(torch.tensor([[3.0, 4.0], [0.3, 0.4]]), step=1.0, lam=1.0 / 2**0.5)
        tensor([[2.4000, 3.2000],
                [0.0000, 0.0000]])
    """
    check_strength(lam, alpha)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step=}")
    shrunk = soft_threshold(groups, step * alpha * lam) if alpha > 0 else groups
    norms = shrunk.norm(dim=1, keepdim=True)
    tau = step * (1 - alpha) * lam * math.sqrt(groups.shape[1])
    scale = torch.clamp(1 - tau / norms.clamp_min(torch.finfo(groups.dtype).tiny), min=0)
    return shrunk * scale
