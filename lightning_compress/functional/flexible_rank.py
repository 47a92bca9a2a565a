"""Flexible-rank math (Yaguchi et al., "Decomposable-Net", IJCAI 2021): one model, any rank after training.

Every decomposed layer's weight ``W`` (seen as a matrix, :func:`~lightning_compress.functional.as_matrix`)
has a thin SVD ``U diag(s) V^T``. For a rank ratio ``rho`` one threshold on the singular values of all
layers pooled keeps the ``round(rho * N)`` largest (:func:`global_ranks`); a layer at rank ``r`` runs with
``W_r = U_r U_r^T W V_r V_r^T`` (:func:`low_rank_weight`), which is the truncated SVD when the factors are
``W``'s own. Its gradient flows back through the truncation with the paper's clipped formula (ratios of
squared singular values across the cut capped at ``eps``), so near-equal values cannot blow it up. The
low-rank gradient is rescaled to the full-rank one's norm per tensor (:func:`match_norm`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = [
    "global_ranks",
    "low_rank_weight",
    "match_norm",
    "ranks_for_budget",
    "svd_factors",
    "truncation_grad",
]


def svd_factors(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(U, s, V)`` of a matrix (thin SVD, ``s`` descending, ``matrix = U diag(s) V^T``), in float32 or wider.

    Example:
        >>> u, s, v = svd_factors(torch.diag(torch.tensor([1.0, 3.0])))
        >>> s.tolist()
        [3.0, 1.0]
    """
    work = matrix.detach()
    if work.dtype not in (torch.float32, torch.float64):
        work = work.float()
    u, s, vh = torch.linalg.svd(work, full_matrices=False)
    return u, s, vh.mT


def global_ranks(spectra: Mapping[str, torch.Tensor], ratio: float, min_rank: int = 1) -> dict[str, int]:
    """The rank of every layer at ``ratio``: the ``round(ratio * N)`` largest singular values of all layers
    pooled (``N`` of them in all) are kept, and each layer keeps at least ``min_rank`` (its full rank at most).

    Example:
        >>> spectra = {"a": torch.tensor([9.0, 5.0, 1.0]), "b": torch.tensor([4.0, 3.0, 2.0, 0.5])}
        >>> global_ranks(spectra, 4 / 7)
        {'a': 2, 'b': 2}
        >>> global_ranks(spectra, 0.0, min_rank=1), global_ranks(spectra, 1.0)
        ({'a': 1, 'b': 1}, {'a': 3, 'b': 4})
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    names = list(spectra)
    values = torch.cat([spectra[n].detach().double().flatten().cpu() for n in names])
    owner = torch.cat([torch.full((spectra[n].numel(),), i) for i, n in enumerate(names)])
    keep = round(ratio * values.numel())
    order = torch.argsort(values, descending=True, stable=True)[:keep]
    counts = torch.bincount(owner[order], minlength=len(names)).tolist()
    return {n: max(min(min_rank, spectra[n].numel()), int(c)) for n, c in zip(names, counts, strict=True)}


def ranks_for_budget(
    spectra: Mapping[str, torch.Tensor],
    cost: Callable[[dict[str, int]], float],
    budget: float,
    min_rank: int = 1,
) -> tuple[float, dict[str, int]]:
    """The largest ratio (and its :func:`global_ranks`) whose ``cost`` is at most ``budget``: a bisection on
    the number of singular values kept (the cost grows with it).

    Raises:
        ValueError: when even the smallest model (``min_rank`` everywhere) costs more than ``budget``.

    Example:
        >>> spectra = {"a": torch.tensor([9.0, 5.0, 1.0]), "b": torch.tensor([4.0, 3.0, 2.0, 0.5])}
        >>> ranks_for_budget(spectra, lambda r: 10 * r["a"] + r["b"], 23)
        (0.7142857142857143, {'a': 2, 'b': 3})
    """
    total = sum(int(s.numel()) for s in spectra.values())
    low, high = 0, total  # cost(low) <= budget < cost(high + 1)
    if cost(global_ranks(spectra, 0.0, min_rank)) > budget:
        smallest = cost(global_ranks(spectra, 0.0, min_rank))
        raise ValueError(
            f"the budget {budget:,.0f} is below the smallest size ({smallest:,.0f}, rank {min_rank})"
        )
    if cost(global_ranks(spectra, 1.0, min_rank)) <= budget:
        return 1.0, global_ranks(spectra, 1.0, min_rank)
    while high - low > 1:
        middle = (low + high) // 2
        if cost(global_ranks(spectra, middle / total, min_rank)) <= budget:
            low = middle
        else:
            high = middle
    return low / total, global_ranks(spectra, low / total, min_rank)


def truncation_grad(
    grad: torch.Tensor, u: torch.Tensor, s: torch.Tensor, v: torch.Tensor, rank: int, eps: float = 0.99
) -> torch.Tensor:
    """The gradient with respect to ``W`` of a loss whose gradient with respect to the rank-``rank``
    truncation ``W_r`` is ``grad`` (the paper's formula; exact where the clip does not bind).

    Example:
        >>> w = torch.randn(5, 3, dtype=torch.float64); u, s, v = svd_factors(w)
        >>> torch.allclose(truncation_grad(torch.ones(5, 3, dtype=torch.float64), u, s, v, 3), torch.ones(5, 3, dtype=torch.float64))
        True
    """
    tall = u.shape[0] >= v.shape[0]
    if not tall:  # the formula is written for m >= n: transpose everything
        grad, u, v = grad.mT, v, u
    ur, uo, vr, vo = u[:, :rank], u[:, rank:], v[:, :rank], v[:, rank:]
    sr, so = s[:rank], s[rank:]
    x2 = ((so[None, :] ** 2) / (sr[:, None] ** 2).clamp(min=torch.finfo(s.dtype).tiny)).clamp(max=eps)
    k1 = 1.0 / (1.0 - x2)
    k2 = x2.sqrt() * k1
    k3 = x2 * k1
    grad_v = grad @ vr  # m x r, used twice
    a = grad_v.mT @ uo  # r x (n - r)
    b = (ur.mT @ grad) @ vo
    # every product keeps a rank-r side inside: no (m x (n - r)) @ ((n - r) x n) product
    out = grad_v @ vr.mT + ur @ ((k2 * a + k1 * b) @ vo.mT) + (uo @ (k3 * a + k2 * b).mT) @ vr.mT
    return out if tall else out.mT


class _Truncate(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        matrix: torch.Tensor,
        u: torch.Tensor,
        s: torch.Tensor,
        v: torch.Tensor,
        rank: int,
        eps: float,
    ) -> torch.Tensor:
        ctx.save_for_backward(u, s, v)
        ctx.rank, ctx.eps, ctx.dtype = rank, eps, matrix.dtype
        ur, vr = u[:, :rank].to(matrix.dtype), v[:, :rank].to(matrix.dtype)
        return ur @ ((ur.mT @ matrix) @ vr) @ vr.mT

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        u, s, v = ctx.saved_tensors
        out = truncation_grad(grad.to(u.dtype), u, s, v, ctx.rank, ctx.eps)
        return out.to(ctx.dtype), None, None, None, None, None


def low_rank_weight(
    weight: torch.Tensor,
    factors: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    rank: int,
    eps: float = 0.99,
) -> torch.Tensor:
    """``weight`` at ``rank`` (its shape kept): ``U_r U_r^T W V_r V_r^T`` with ``factors`` ``(U, s, V)`` of
    its matrix (the truncated SVD when they are ``weight``'s own; a projection onto their subspaces when
    they are a few steps old), differentiable through :func:`truncation_grad`.

    Example:
        >>> w = torch.diag(torch.tensor([3.0, 2.0, 1.0])).requires_grad_()
        >>> low = low_rank_weight(w, svd_factors(w), 2); low.sum().backward()
        >>> torch.diag(low).tolist(), w.grad.shape
        ([3.0, 2.0, 0.0], torch.Size([3, 3]))
    """
    matrix = weight.reshape(weight.shape[0], -1)
    u, s, v = factors
    return _Truncate.apply(matrix, u, s, v, int(rank), float(eps)).reshape(weight.shape)


def match_norm(low: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """``low`` rescaled to the Frobenius norm of ``full`` (the low-rank gradient matched per tensor).

    Example:
        >>> match_norm(torch.tensor([3.0, 4.0]), torch.tensor([0.0, 10.0])).tolist()
        [6.0, 8.0]
    """
    return low * (full.norm() / low.norm().clamp(min=1e-15))
