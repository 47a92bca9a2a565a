"""The group lasso on groups spread over several tensors, acting on the parameters where they live.

A neuron's group is spread over several tensors (a conv filter, its bias, BatchNorm entries, the next
layer's input slice), each described by a :class:`GroupPiece` saying along which dimension it is indexed
and which group each position belongs to. Equal to the matrix form of
:mod:`lightning_compress.functional.group_lasso` (tested), without copying the groups into a matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lightning_compress.functional.group_lasso import (
    check_strength,
    soft_threshold,
    trimmed,
    trimmed_prox_scores,
)

__all__ = [
    "GroupPiece",
    "batched_group_prox_",
    "sliced_group_sizes",
    "sliced_group_sq_norms",
    "sliced_penalty",
    "sliced_penalty_grad_",
    "sliced_prox_",
]


@dataclass(frozen=True)
class GroupPiece:
    """A slice of one tensor that belongs to a family of groups.

    Args:
        tensor: The parameter (or its ``.data``).
        dim: The dimension that is indexed by group positions.
        index: Positions along ``dim`` that belong to some group; ``None`` means all of them.
        root: The group of each position (same length as ``index``); ``None`` means position ``i`` is group ``i``.

    Example:
        >>> w = torch.arange(6.0).reshape(3, 2)   # rows 0 and 2 are two groups' slices of this tensor
        >>> piece = GroupPiece(w, dim=0, index=torch.tensor([0, 2]), root=torch.tensor([1, 0]))
        >>> piece.positions().tolist()
        [[0.0, 1.0], [4.0, 5.0]]
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
    """Squared L2 norm of each of ``num_groups`` groups spread over ``pieces``.

    Example:
        >>> w = torch.tensor([[3.0, 0.0], [1.0, 1.0]]); b = torch.tensor([4.0, 0.0])
        >>> sliced_group_sq_norms([GroupPiece(w, 0), GroupPiece(b, 0)], 2)
        tensor([25.0000,  2.0000])
    """
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
    """Number of parameters in each group (the ``P`` of the ``sqrt(P)`` weighting).

    Example:
        >>> sliced_group_sizes([GroupPiece(torch.zeros(3, 4), 0), GroupPiece(torch.zeros(3), 0)], 3)
        tensor([5., 5., 5.])
    """
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
        check_strength(float(lam.max()) if lam.numel() else 0.0, alpha)
    else:
        check_strength(lam, alpha)
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
        check_strength(float(lam.max()) if lam.numel() else 0.0, alpha)
        lam_t: float | torch.Tensor = lam.to(pieces[0].tensor)
    else:
        check_strength(lam, alpha)
        lam_t = float(lam)
    if alpha > 0:
        for piece in pieces:
            tau = step * alpha * (piece.per_position(lam_t) if isinstance(lam_t, torch.Tensor) else lam_t)
            if piece.index is None and not isinstance(tau, torch.Tensor):  # in place, one temporary
                piece.tensor.sub_(piece.tensor.clamp(-tau, tau))
            else:
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

    Example:
        >>> w = torch.tensor([[3.0, 4.0], [0.0, 0.0]]); g = torch.zeros(2, 2)
        >>> sliced_penalty_grad_([GroupPiece(w, 0)], [g], 2, lam=1.0)
        >>> g  # sqrt(2) * w / ||w|| for the first group, 0 at the zero group
        tensor([[0.8485, 1.1314],
                [0.0000, 0.0000]])
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
