"""Low-rank math (Alvarez & Salzmann, NIPS 2017): the nuclear norm, its prox, truncated SVD, rank rules.

A layer's weight is seen as a matrix ``out x fan_in``: a Linear's weight as it is, a Conv2d's reshaped
to ``out x (in * kh * kw)`` (:func:`as_matrix`). Splitting a rank-``r`` layer into two thin layers saves
parameters only when ``r < m * n / (m + n)`` (:func:`break_even_rank`).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "as_matrix",
    "break_even_rank",
    "choose_rank",
    "nuclear_norm",
    "shrink_spectrum",
    "singular_value_threshold",
    "split_rank",
    "truncated_svd",
]


def as_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A weight as the matrix it multiplies with: ``(out, fan_in)`` (a view where possible).

    Example:
        >>> as_matrix(torch.zeros(8, 3, 5, 5)).shape
        torch.Size([8, 75])
    """
    return weight.reshape(weight.shape[0], -1)


def nuclear_norm(weight: torch.Tensor) -> torch.Tensor:
    """The sum of the singular values of :func:`as_matrix` of ``weight``.

    Example:
        >>> nuclear_norm(torch.diag(torch.tensor([3.0, -4.0])))
        tensor(7.)
    """
    return torch.linalg.matrix_norm(as_matrix(weight), ord="nuc")


def singular_value_threshold(
    weight: torch.Tensor, tau: float, *, rank_hint: int | None = None, oversample: int = 10
) -> tuple[torch.Tensor, int]:
    """The prox of ``tau * ||W||_*``: ``U diag(max(s - tau, 0)) V^T``, shaped like ``weight``; and its rank.

    With ``rank_hint`` (the rank the last prox left), a randomized SVD of rank ``rank_hint + oversample``
    (Halko et al. 2011, ``torch.svd_lowrank``, four power iterations, a fixed seed, the global random
    state untouched) replaces the full one when that rank is at most half the smaller side; when every
    value it finds is above ``tau`` the rank may have grown, and the full SVD decides. The result
    matches the full SVD's where the spectrum has a gap at ``tau`` (as after a prox and some steps);
    without one it is an approximation. ``benchmarks/svt_speed.py`` measures both.

    Example:
        >>> w, rank = singular_value_threshold(torch.diag(torch.tensor([3.0, 0.5])), 1.0)
        >>> w, rank
        (tensor([[2., 0.],
                [0., 0.]]), 1)
    """
    if not math.isfinite(tau) or tau < 0:
        raise ValueError(f"the threshold must be finite and >= 0, got {tau=}")
    matrix = as_matrix(weight)
    if rank_hint is not None and 0 < rank_hint + oversample <= min(matrix.shape) // 2:
        devices = [matrix.device] if matrix.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            u, s, v = torch.svd_lowrank(matrix, q=rank_hint + oversample, niter=4)
        if s[-1] <= tau:
            s = (s - tau).clamp_(min=0)
            rank = int((s > 0).sum())
            return ((u[:, :rank] * s[:rank]) @ v[:, :rank].T).reshape(weight.shape), rank
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    s = (s - tau).clamp_(min=0)
    rank = int((s > 0).sum())
    shrunk = (u[:, :rank] * s[:rank]) @ vh[:rank]
    return shrunk.reshape(weight.shape), rank


def shrink_spectrum(weight: torch.Tensor, thresholds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``U diag(max(s - t, 0)) V^T`` with one threshold per singular value (largest first), shaped like
    ``weight``; and the singular values after.

    Example:
        >>> w, s = shrink_spectrum(torch.diag(torch.tensor([3.0, 0.5])), torch.tensor([0.0, 1.0]))
        >>> w, s
        (tensor([[3., 0.],
                [0., 0.]]), tensor([3., 0.]))
    """
    matrix = as_matrix(weight)
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    s = (s - thresholds.to(s)).clamp_(min=0)
    return ((u * s) @ vh).reshape(weight.shape), s


def truncated_svd(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best rank-``rank`` factors ``(A, B)`` of :func:`as_matrix`: ``A @ B``, ``A`` is ``out x rank``.

    ``A = U_r`` and ``B = S_r V_r^T`` (the singular values go with the first of the two layers).

    Example:
        >>> a, b = truncated_svd(torch.diag(torch.tensor([3.0, 2.0, 1.0])), 2)
        >>> a.shape, b.shape, torch.allclose(a @ b, torch.diag(torch.tensor([3.0, 2.0, 0.0])))
        (torch.Size([3, 2]), torch.Size([2, 3]), True)
    """
    matrix = as_matrix(weight)
    limit = min(matrix.shape)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= limit:
        raise ValueError(
            f"rank must be an int in [1, {limit}] for a {tuple(matrix.shape)} matrix, got {rank=}"
        )
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    return u[:, :rank].contiguous(), (s[:rank, None] * vh[:rank]).contiguous()


def break_even_rank(out_features: int, fan_in: int) -> float:
    """``m n / (m + n)``: a split into two thin layers saves parameters only below this rank.

    Example:
        >>> break_even_rank(300, 784)
        216.9741697416974
    """
    return out_features * fan_in / (out_features + fan_in)


def choose_rank(
    singular_values: torch.Tensor,
    *,
    rank: int | None = None,
    energy: float | None = None,
    param_ratio: float | None = None,
    shape: tuple[int, int] | None = None,
    tol: float = 0.0,
) -> int:
    """The rank a rule picks from a layer's singular values (largest first).

    With no rule, the number of singular values above ``tol`` (what a nuclear-norm prox left). ``rank``:
    that rank (at most the number of values). ``energy`` in (0, 1]: the smallest rank whose values hold
    that share of ``sum(s**2)``. ``param_ratio`` in (0, 1] (needs the matrix ``shape``, ``(m, n)``): the
    largest rank whose two thin layers hold at most that share of the dense layer's ``m n`` parameters
    (``r (m + n) <= param_ratio m n``, at least 1).

    Example:
        >>> s = torch.tensor([4.0, 2.0, 1.0, 0.0])
        >>> choose_rank(s), choose_rank(s, energy=0.9), choose_rank(s, param_ratio=0.5, shape=(4, 6))
        (3, 2, 1)
    """
    given = [r for r in (rank, energy, param_ratio) if r is not None]
    if len(given) > 1:
        raise ValueError("give at most one of rank, energy and param_ratio")
    values = singular_values.detach().float()
    if rank is not None:
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be an int >= 1, got {rank=}")
        return min(rank, values.numel())
    if energy is not None:
        if not 0 < energy <= 1:
            raise ValueError(f"energy must be in (0, 1], got {energy=}")
        share = (values.square().cumsum(0) / values.square().sum().clamp_min(1e-30)).tolist()
        return next((i + 1 for i, v in enumerate(share) if v >= energy - 1e-12), values.numel())
    if param_ratio is not None:
        if not 0 < param_ratio <= 1 or shape is None:
            raise ValueError(
                f"param_ratio must be in (0, 1] and needs the matrix shape, got {param_ratio=}, {shape=}"
            )
        m, n = shape
        return max(1, min(values.numel(), math.floor(param_ratio * m * n / (m + n) + 1e-9)))
    return max(1, int((values > tol).sum()))


def split_rank(
    weight: torch.Tensor,
    *,
    energy: float | None = None,
    param_ratio: float | None = None,
    rel_tol: float = 1e-5,
) -> int | None:
    """The rank to split ``weight`` at, or ``None`` when a split would not save parameters.

    The rank is the number of singular values above ``rel_tol`` times the largest (what a nuclear-norm
    prox left), or the ``energy`` or ``param_ratio`` rule of :func:`choose_rank`; a split pays only below
    :func:`break_even_rank`.

    Example:
        >>> w = torch.zeros(40, 60); w[0, 0] = 3.0; w[1, 1] = 1.0
        >>> split_rank(w), split_rank(torch.eye(40, 60)), split_rank(torch.eye(40, 60), param_ratio=0.25)
        (2, None, 6)
    """
    matrix = as_matrix(weight).detach().float()
    s = torch.linalg.svdvals(matrix)
    tol = rel_tol * float(s.max()) if s.numel() else 0.0
    if param_ratio is not None:
        rank = choose_rank(s, param_ratio=param_ratio, shape=(matrix.shape[0], matrix.shape[1]))
    elif energy is not None:
        rank = choose_rank(s, energy=energy)
    else:
        rank = choose_rank(s, tol=tol)
    return rank if rank < break_even_rank(*matrix.shape) else None
