"""Data-aware low-rank factors (Masana et al., ICCV 2017): DALR, and SVD with bias compensation.

A layer ``y = W x + b`` (``W`` is ``m x n``, :func:`~lightning_compress.functional.as_matrix` for a
conv) is replaced by two thin layers ``y = A (B x) + b'``. Truncated SVD picks ``A B`` closest to ``W``;
DALR picks it closest *on the data*: it minimises ``||W X - A B X||_F`` over the layer's inputs ``X``
(``n x p``, one column per sample). Everything here is computed from the second moments ``X X^T``
(``n x n``) or ``Z Z^T`` with ``Z = W X`` (``m x m``), never from ``X``, so the samples can be streamed.

* ``A = U_k``, the top-``k`` eigenvectors of ``Z Z^T = W X X^T W^T`` (the left singular vectors of
  ``Z``).
* ``B = U_k^T W X X^T (X X^T + lambda I)^{-1}`` with ``lambda = ridge * trace(X X^T) / n``; with
  ``ridge = 0`` this is ``U_k^T W`` (exact, and free of any inverse when ``X X^T`` is singular), and
  ``A B X`` is then the best rank-``k`` approximation of ``Z`` (Eckart-Young): never worse on the
  data than truncated SVD at the same rank.
"""

from __future__ import annotations

import math

import torch

from lightning_compress.functional.low_rank import as_matrix

__all__ = ["bias_compensation", "dalr_factors", "output_error", "output_moments", "output_spectrum"]


def _check_rank(rank: int, limit: int, shape: tuple[int, ...]) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= limit:
        raise ValueError(f"rank must be an int in [1, {limit}] for a {shape} matrix, got {rank=}")


def _check_moments(xxt: torch.Tensor, n: int, what: str) -> torch.Tensor:
    if xxt.shape != (n, n):
        raise ValueError(f"{what} must be {n} x {n}, got {tuple(xxt.shape)}")
    if not bool(torch.isfinite(xxt).all()):
        raise ValueError(f"{what} holds NaN or infinite values")
    return xxt.double()


def output_moments(weight: torch.Tensor, xxt: torch.Tensor) -> torch.Tensor:
    """``Z Z^T = W (X X^T) W^T`` in float64: the second moments of the layer's outputs (bias left out).

    Example:
        >>> output_moments(torch.tensor([[1.0, 1.0]]), torch.eye(2))
        tensor([[2.]], dtype=torch.float64)
    """
    w = as_matrix(weight).double()
    c = _check_moments(xxt, w.shape[1], "xxt")
    return w @ c @ w.T


def output_spectrum(zzt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (largest first, clamped at 0) and eigenvectors (columns) of ``Z Z^T``.

    ``eigenvalues[k:].sum()`` is the squared output error DALR leaves at rank ``k`` (ridge 0).

    Example:
        >>> values, vectors = output_spectrum(torch.diag(torch.tensor([1.0, 4.0])))
        >>> values.tolist(), vectors[:, 0].abs().tolist()
        ([4.0, 1.0], [0.0, 1.0])
    """
    zzt = zzt.double()
    zzt = (zzt + zzt.T) / 2
    values, vectors = torch.linalg.eigh(zzt)
    return values.flip(0).clamp_(min=0), vectors.flip(1)


def dalr_factors(
    weight: torch.Tensor,
    rank: int,
    *,
    xxt: torch.Tensor | None = None,
    zzt: torch.Tensor | None = None,
    cross: torch.Tensor | None = None,
    ridge: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DALR's rank-``rank`` factors ``(A, B)`` of ``weight`` on data with input moments ``xxt``.

    Args:
        weight: A Linear or Conv2d weight (seen as :func:`as_matrix`, ``m x n``).
        rank: ``k``, between 1 and ``min(m, n)``.
        xxt: ``X X^T`` of the layer's input rows (``n x n``, any positive scale: a sum or a mean).
        zzt: ``Z Z^T`` of its outputs (``m x m``) instead: enough when ``ridge == 0`` and cheaper to
            stream when ``m < n``.
        cross: ``X_ref X^T`` (``n x n``): fit ``A B X`` to the reference outputs ``W X_ref`` instead of
            ``W X`` (a layer fed by already compressed layers, ``X``, fitted to the original network's
            outputs): ``C = W X_ref X^T (X X^T + lambda I)^+``, then ``A`` the top eigenvectors of
            ``C X X^T C^T`` and ``B = A^T C`` (reduced-rank regression). Needs ``xxt``.
        ridge: ``lambda`` relative to the mean input energy ``trace(X X^T) / n``; needs ``xxt``.

    Returns:
        ``A`` (``m x k``, goes with the bias) and ``B`` (``k x n``), in ``weight``'s dtype.

    Example:
        >>> w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> a, b = dalr_factors(w, 1, xxt=torch.diag(torch.tensor([1.0, 9.0])))  # data lives on input 2
        >>> (a @ b).abs().tolist()
        [[0.0, 0.0], [0.0, 1.0]]
    """
    w = as_matrix(weight).double()
    m, n = w.shape
    _check_rank(rank, min(m, n), (m, n))
    if not math.isfinite(ridge) or ridge < 0:
        raise ValueError(f"ridge must be finite and >= 0, got {ridge=}")
    if xxt is None and (zzt is None or ridge > 0):
        raise ValueError("give xxt (or zzt with ridge=0)")
    c = _check_moments(xxt, n, "xxt") if xxt is not None else None
    if cross is not None:
        if c is None:
            raise ValueError("cross needs xxt")
        lam = ridge * float(torch.diagonal(c).mean())
        regularized = c + lam * torch.eye(n, dtype=c.dtype, device=c.device)
        fitted = w @ _check_moments(cross, n, "cross") @ torch.linalg.pinv(regularized, hermitian=True)
        _, vectors = output_spectrum(fitted @ c @ fitted.T)
        a = vectors[:, :rank]
        return a.to(weight.dtype).contiguous(), (a.T @ fitted).to(weight.dtype).contiguous()
    outputs = _check_moments(zzt, m, "zzt") if zzt is not None else w @ c @ w.T  # type: ignore[operator]
    _, vectors = output_spectrum(outputs)
    a = vectors[:, :rank]
    b = a.T @ w
    if ridge > 0 and c is not None:
        lam = ridge * float(torch.diagonal(c).mean())
        if lam > 0:  # B^T = (C + lam I)^-1 C W^T U_k, C symmetric positive semi-definite
            regularized = c + lam * torch.eye(n, dtype=c.dtype, device=c.device)
            b = torch.linalg.solve(regularized, c @ b.T).T
    return a.to(weight.dtype).contiguous(), b.to(weight.dtype).contiguous()


def bias_compensation(
    weight: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    bias: torch.Tensor | None,
    input_mean: torch.Tensor,
) -> torch.Tensor:
    """The bias that absorbs the residual's mean effect: ``b + (W - A B) x_mean`` (Masana et al., Eq. 4).

    Example:
        >>> w = torch.tensor([[1.0, 1.0]]); a = torch.ones(1, 1); b = torch.tensor([[1.0, 0.0]])
        >>> bias_compensation(w, a, b, torch.zeros(1), torch.tensor([0.0, 2.0]))
        tensor([2.])
    """
    w = as_matrix(weight).double()
    residual = w - a.double() @ b.double()
    base = bias.double() if bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    return (base.to(residual.device) + residual @ input_mean.double().to(residual.device)).to(weight.dtype)


def output_error(weight: torch.Tensor, a: torch.Tensor, b: torch.Tensor, xxt: torch.Tensor) -> float:
    """``||W X - A B X||_F^2`` from the input moments: ``trace(R X X^T R^T)`` with ``R = W - A B``.

    Example:
        >>> output_error(torch.eye(2), torch.tensor([[1.0], [0.0]]), torch.tensor([[1.0, 0.0]]), torch.eye(2))
        1.0
    """
    residual = as_matrix(weight).double() - a.double() @ b.double()
    c = _check_moments(xxt, residual.shape[1], "xxt")
    return float(((residual @ c) * residual).sum())
