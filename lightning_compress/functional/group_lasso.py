"""Group lasso and sparse group lasso (Alvarez & Salzmann, NIPS 2016): penalties and proximal operators.

Two forms. The *matrix* form takes groups as the rows of an ``(N, P)`` matrix and is the exact reference.
The *sliced* form acts on the parameters where they live: a neuron's group is spread over several tensors
(a conv filter, its bias, BatchNorm entries, the next layer's input slice), each described by a
:class:`GroupPiece` saying along which dimension it is indexed and which group each position belongs to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "GroupPiece",
    "batched_group_prox_",
    "group_lasso_penalty",
    "prox_sparse_group_lasso",
    "sliced_group_sizes",
    "sliced_group_sq_norms",
    "sliced_penalty",
    "sliced_penalty_grad_",
    "sliced_prox_",
    "soft_threshold",
    "trimmed",
    "trimmed_prox_scores",
]


def soft_threshold(x: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """Elementwise ``sign(x) * max(|x| - tau, 0)``, the prox of ``tau * ||x||_1``.

    Example:
        >>> soft_threshold(torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5]), 0.5)
        tensor([-1.5000, -0.0000,  0.0000,  0.0000,  1.0000])
    """
    return torch.sign(x) * torch.clamp(x.abs() - tau, min=0)


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


def _check(lam: float, alpha: float) -> None:
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
    _check(lam, alpha)
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
    _check(lam, alpha)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step=}")
    shrunk = soft_threshold(groups, step * alpha * lam) if alpha > 0 else groups
    norms = shrunk.norm(dim=1, keepdim=True)
    tau = step * (1 - alpha) * lam * math.sqrt(groups.shape[1])
    scale = torch.clamp(1 - tau / norms.clamp_min(torch.finfo(groups.dtype).tiny), min=0)
    return shrunk * scale


@dataclass(frozen=True)
class GroupPiece:
    """A slice of one tensor that belongs to a family of groups.

    Args:
        tensor: The parameter (or its ``.data``).
        dim: The dimension that is indexed by group positions.
        index: Positions along ``dim`` that belong to some group; ``None`` means all of them.
        root: The group of each position (same length as ``index``); ``None`` means position ``i`` is group ``i``.
    """

    tensor: torch.Tensor
    dim: int
    index: torch.Tensor | None = None
    root: torch.Tensor | None = None

    def positions(self) -> torch.Tensor:
        """The piece's values with ``dim`` moved first: ``(positions, rest)``."""
        x = self.tensor if self.index is None else self.tensor.index_select(self.dim, self.index)
        return x.movedim(self.dim, 0).reshape(x.shape[self.dim], -1)

    def per_position(self, values: torch.Tensor) -> torch.Tensor:
        """Group values ``(N,)`` spread to this piece's positions, shaped to broadcast against the slice."""
        v = values if self.root is None else values[self.root]
        shape = [1] * self.tensor.ndim
        shape[self.dim] = -1
        return v.reshape(shape)

    def scatter(self, per_position: torch.Tensor, num_groups: int) -> torch.Tensor:
        """Sum per-position values into their groups."""
        if self.root is None:
            return per_position
        out = torch.zeros(num_groups, dtype=per_position.dtype, device=per_position.device)
        return out.index_add_(0, self.root, per_position)

    def apply_(self, fn_of_slice: torch.Tensor) -> None:
        """Write ``fn_of_slice`` (same shape as the selected slice) back into the tensor."""
        if self.index is None:
            self.tensor.copy_(fn_of_slice)
        else:
            self.tensor.index_copy_(self.dim, self.index, fn_of_slice)

    def selected(self) -> torch.Tensor:
        return self.tensor if self.index is None else self.tensor.index_select(self.dim, self.index)


def sliced_group_sq_norms(pieces: Sequence[GroupPiece], num_groups: int) -> torch.Tensor:
    """Squared L2 norm of each of ``num_groups`` groups spread over ``pieces``."""
    total: torch.Tensor | None = None
    inplace = not torch.is_grad_enabled()  # in-place on temporaries saves launches, but breaks autograd
    for piece in pieces:
        t = piece.tensor
        if piece.index is None and t.ndim == 1:  # a bias-like piece: one value per position, no reduction
            if piece.root is None and total is not None and inplace:
                total.addcmul_(t, t)
                continue
            sq = piece.scatter(t.square(), num_groups)
        elif piece.index is None and piece.root is None:  # the common case: reduce without copies
            other = tuple(d for d in range(t.ndim) if d != piece.dim)
            norm = torch.linalg.vector_norm(t, dim=other)
            sq = norm.square_() if inplace else norm.square()
        else:
            sq = piece.scatter(torch.linalg.vector_norm(piece.positions(), dim=1).square(), num_groups)
        total = sq if total is None else (total.add_(sq) if inplace else total + sq)
    if total is None:
        raise ValueError("a group family needs at least one piece")
    return total


def sliced_group_sizes(pieces: Sequence[GroupPiece], num_groups: int) -> torch.Tensor:
    """Number of parameters in each group (the ``P`` of the ``sqrt(P)`` weighting)."""
    return sliced_group_sq_norms(
        [GroupPiece(torch.ones_like(p.tensor), p.dim, p.index, p.root) for p in pieces], num_groups
    )


def sliced_penalty(
    pieces: Sequence[GroupPiece],
    num_groups: int,
    lam: float | torch.Tensor,
    alpha: float = 0.0,
    sizes: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`group_lasso_penalty` for groups spread over ``pieces`` (each group weighted by its own ``sqrt(P)``).

    ``lam`` may be a scalar or one strength per group.

    Example:
        >>> w = torch.tensor([[3.0, 0.0], [0.0, 0.0]]); b = torch.tensor([4.0, 0.0])
        >>> sliced_penalty([GroupPiece(w, 0), GroupPiece(b, 0)], 2, lam=1.0)
        tensor(8.6603)
    """
    if isinstance(lam, torch.Tensor):
        _check(float(lam.max()) if lam.numel() else 0.0, alpha)
    else:
        _check(lam, alpha)
    sizes = sliced_group_sizes(pieces, num_groups) if sizes is None else sizes
    norms = sliced_group_sq_norms(pieces, num_groups).sqrt()
    value = (1 - alpha) * (lam * sizes.sqrt() * norms).sum()
    if alpha > 0:
        l1 = torch.zeros((), dtype=value.dtype, device=value.device)
        for p in pieces:
            weight = p.per_position(lam.to(p.tensor)) if isinstance(lam, torch.Tensor) else lam
            l1 = l1 + (weight * p.selected().abs()).sum()
        value = value + alpha * l1
    return value


@torch.no_grad()
def sliced_prox_(
    pieces: Sequence[GroupPiece],
    num_groups: int,
    step: float,
    lam: float | torch.Tensor,
    alpha: float = 0.0,
    sizes: torch.Tensor | None = None,
    *,
    sqrt_sizes: torch.Tensor | None = None,
) -> torch.Tensor:
    """In-place :func:`prox_sparse_group_lasso` on groups spread over ``pieces``; returns the new group norms.

    ``lam`` may be a scalar or one strength per group. Pieces must not overlap; apply families one after
    another when they do. Pass ``sqrt_sizes`` (``sizes.sqrt()``) when calling it every step.

    Example:
        >>> w = torch.tensor([[3.0], [0.3]]); b = torch.tensor([4.0, 0.4])
        >>> sliced_prox_([GroupPiece(w, 0), GroupPiece(b, 0)], 2, step=1.0, lam=0.5)
        tensor([4.2929, 0.0000])
        >>> w[1], b[1]
        (tensor([0.]), tensor(0.))
    """
    if isinstance(lam, torch.Tensor):
        _check(float(lam.max()) if lam.numel() else 0.0, alpha)
        lam_t: float | torch.Tensor = lam.to(pieces[0].tensor)
    else:
        _check(lam, alpha)
        lam_t = float(lam)
    if alpha > 0:
        for piece in pieces:
            tau = step * alpha * (piece.per_position(lam_t) if isinstance(lam_t, torch.Tensor) else lam_t)
            piece.apply_(soft_threshold(piece.selected(), tau))
    if sqrt_sizes is None:
        sqrt_sizes = (sliced_group_sizes(pieces, num_groups) if sizes is None else sizes).sqrt()
    norms = sliced_group_sq_norms(pieces, num_groups).sqrt_()
    tau_group = sqrt_sizes * (lam_t * (step * (1 - alpha)))
    # scale = max(0, 1 - tau / ||g||), in place on one temporary (this runs after every optimizer step)
    scale = tau_group.div_(norms.clamp_min(torch.finfo(norms.dtype).tiny)).neg_().add_(1).clamp_(min=0)
    for piece in pieces:
        if piece.index is None:
            piece.tensor.mul_(piece.per_position(scale))
        else:
            piece.apply_(piece.selected() * piece.per_position(scale))
    return norms.mul_(scale)


@torch.no_grad()
def batched_group_prox_(
    families: Sequence[Sequence[GroupPiece]],
    num_groups: Sequence[int],
    thresholds: torch.Tensor,
    step: float,
    keep: Sequence[int] | None = None,
) -> None:
    """Group soft-threshold of several families at once: each group ``g <- max(0, 1 - step * t_g / ||g||) g``.

    ``thresholds`` holds ``t_g = lam * sqrt(P_g)`` for every group, family after family (``num_groups[f]``
    of them for family ``f``). ``keep[f]`` groups of family ``f`` are left as they are
    (the trimmed group lasso, see :func:`trimmed`): those whose penalty would cost the most in the
    objective (:func:`trimmed_prox_scores`), which is exact for any mix of thresholds. Equal to
    :func:`sliced_prox_` with ``alpha = 0`` family by family, with one scale computation for all
    families: this runs after every optimizer step.

    Example:
        >>> w = torch.tensor([[3.0], [0.3]]); b = torch.tensor([4.0, 0.4]); v = torch.tensor([[0.0, 2.0]])
        >>> fams = [[GroupPiece(w, 0), GroupPiece(b, 0)], [GroupPiece(v, 0)]]
        >>> batched_group_prox_(fams, [2, 1], torch.tensor([0.5, 0.5, 1.0]), step=1.0)
        >>> w.flatten(), b, v
        (tensor([2.7000, 0.0000]), tensor([3.6000, 0.0000]), tensor([[0., 1.]]))
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step=}")
    sq = [sliced_group_sq_norms(pieces, n) for pieces, n in zip(families, num_groups, strict=True)]
    if not sq:
        return
    if keep is not None and any(keep):
        parts = thresholds.split(list(num_groups))
        thresholds = torch.cat(
            [trimmed(t, trimmed_prox_scores(q, step * t), k) for t, q, k in zip(parts, sq, keep, strict=True)]
        )
    inv = (sq[0] if len(sq) == 1 else torch.cat(sq)).rsqrt_()
    # a zero group has inv = inf: clamp to the largest finite value, so a zero threshold cannot make 0 * inf
    inv = inv.clamp_(max=torch.finfo(inv.dtype).max).mul_(thresholds)
    scale = torch.rsub(inv, 1, alpha=step).clamp_(min=0)
    for pieces, part in zip(families, scale.split(list(num_groups)), strict=True):
        for piece in pieces:
            if piece.index is None:
                piece.tensor.mul_(piece.per_position(part))
            else:
                piece.apply_(piece.selected() * piece.per_position(part))


@torch.no_grad()
def sliced_penalty_grad_(
    pieces: Sequence[GroupPiece],
    grads: Sequence[torch.Tensor],
    num_groups: int,
    lam: float | torch.Tensor,
    alpha: float = 0.0,
    sizes: torch.Tensor | None = None,
) -> None:
    """Add a subgradient of :func:`sliced_penalty` to ``grads`` (one per piece, shaped like its tensor).

    The subgradient taken at a zero group is zero.
    """
    lam_t = torch.as_tensor(lam, dtype=pieces[0].tensor.dtype, device=pieces[0].tensor.device)
    sizes = sliced_group_sizes(pieces, num_groups) if sizes is None else sizes
    norms = sliced_group_sq_norms(pieces, num_groups).sqrt()
    coef = torch.where(
        norms > 0, (1 - alpha) * lam_t * sizes.sqrt() / norms.clamp_min(1e-30), torch.zeros_like(norms)
    )
    for piece, grad in zip(pieces, grads, strict=True):
        sel = piece.selected()
        delta = sel * piece.per_position(coef)
        if alpha > 0:
            delta = delta + alpha * (piece.per_position(lam_t) if lam_t.ndim else lam_t) * torch.sign(sel)
        if piece.index is None:
            grad.add_(delta)
        else:
            grad.index_add_(piece.dim, piece.index, delta)
