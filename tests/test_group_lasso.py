from __future__ import annotations

import itertools
import math

import pytest
import torch

from lightning_compress.functional import (
    GroupPiece,
    batched_group_prox_,
    group_lasso_penalty,
    prox_sparse_group_lasso,
    select_removable,
    sliced_group_sizes,
    sliced_group_sq_norms,
    sliced_penalty,
    sliced_penalty_grad_,
    sliced_prox_,
    soft_threshold,
    trimmed,
)


def _objective(x: torch.Tensor, z: torch.Tensor, step: float, lam: float, alpha: float) -> torch.Tensor:
    return 0.5 * (x - z).pow(2).sum() + step * group_lasso_penalty(x, lam, alpha)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_prox_is_the_minimizer(alpha: float) -> None:
    """No random perturbation of the prox output lowers the prox objective (it is strongly convex)."""
    gen = torch.Generator().manual_seed(0)
    z = (
        torch.randn(12, 7, generator=gen, dtype=torch.float64)
        * torch.linspace(0.02, 1, 12, dtype=torch.float64)[:, None]
    )
    step, lam = 0.3, 0.4
    x = prox_sparse_group_lasso(z, step, lam, alpha)
    best = _objective(x, z, step, lam, alpha)
    for scale in (1e-1, 1e-3):
        for _ in range(200):
            other = x + scale * torch.randn(x.shape, generator=gen, dtype=torch.float64)
            assert _objective(other, z, step, lam, alpha) >= best - 1e-12
    # and at the zeroed groups, zero is also better than any small nonzero group
    dead = x.norm(dim=1) == 0
    assert dead.any() and not dead.all()


def test_prox_closed_form_and_exact_zeros() -> None:
    z = torch.tensor([[3.0, 4.0], [0.6, 0.8], [0.0, 0.0]], dtype=torch.float64)
    tau = 1.0 * 1.0 * math.sqrt(2)  # step * lam * sqrt(P)
    x = prox_sparse_group_lasso(z, step=1.0, lam=1.0)
    assert torch.allclose(x[0], z[0] * (1 - tau / 5))
    assert torch.equal(x[1], torch.zeros(2, dtype=torch.float64)) and torch.equal(x[2], x[1])


def test_pure_l1_is_soft_threshold() -> None:
    z = torch.randn(5, 4, dtype=torch.float64)
    assert torch.equal(prox_sparse_group_lasso(z, 0.5, 0.2, alpha=1.0), soft_threshold(z, 0.1))


def _as_pieces(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[GroupPiece]]:
    weight, bias = matrix[:, :-1].clone(), matrix[:, -1].clone()
    return weight, bias, [GroupPiece(weight, 0), GroupPiece(bias, 0)]


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_sliced_prox_matches_matrix_prox(alpha: float) -> None:
    z = torch.randn(9, 6, dtype=torch.float64) * torch.linspace(0.05, 2, 9, dtype=torch.float64)[:, None]
    expected = prox_sparse_group_lasso(z, 0.5, 0.3, alpha)
    weight, bias, pieces = _as_pieces(z)
    sliced_prox_(pieces, 9, 0.5, 0.3, alpha)
    assert torch.allclose(torch.cat([weight, bias[:, None]], 1), expected)
    assert torch.isclose(sliced_penalty(pieces, 9, 0.3, alpha), group_lasso_penalty(expected, 0.3, alpha))


def test_sliced_prox_with_flatten_mapping() -> None:
    """Conv channel c feeds 4 input columns of the next Linear (c*4 .. c*4+3): one group per channel."""
    conv = torch.randn(3, 2, dtype=torch.float64)
    nxt = torch.randn(5, 12, dtype=torch.float64)
    root = torch.arange(12) // 4
    # the equivalent (N, P) matrix: channel c's conv row and its 4 columns of nxt
    matrix = torch.stack([torch.cat([conv[c], nxt[:, 4 * c : 4 * c + 4].flatten()]) for c in range(3)])
    expected = prox_sparse_group_lasso(matrix, 1.0, 0.2)
    sliced_prox_([GroupPiece(conv, 0), GroupPiece(nxt, 1, None, root)], 3, 1.0, 0.2)
    got = torch.stack([torch.cat([conv[c], nxt[:, 4 * c : 4 * c + 4].flatten()]) for c in range(3)])
    assert torch.allclose(got, expected)


def test_sliced_prox_on_index_subset_leaves_the_rest() -> None:
    t = torch.randn(6, 3, dtype=torch.float64)
    before = t.clone()
    sliced_prox_([GroupPiece(t, 0, torch.tensor([1, 4]), torch.tensor([0, 1]))], 2, 100.0, 1.0)
    assert torch.equal(t[[0, 2, 3, 5]], before[[0, 2, 3, 5]])
    assert torch.count_nonzero(t[[1, 4]]) == 0


def test_batched_prox_equals_sliced_prox_family_by_family() -> None:
    """Three families (plain rows, a conv feeding flattened columns, an index subset), zero groups included."""
    gen = torch.Generator().manual_seed(0)

    def families() -> tuple[list[torch.Tensor], list[list[GroupPiece]]]:
        w = torch.randn(6, 5, generator=gen, dtype=torch.float64) * torch.linspace(0.05, 2, 6)[:, None]
        w[2] = 0  # a zero group stays zero (rsqrt of 0 is inf)
        b = torch.randn(6, generator=gen, dtype=torch.float64)
        b[2] = 0
        conv = torch.randn(3, 2, 3, 3, generator=gen, dtype=torch.float64)
        nxt = torch.randn(4, 12, generator=gen, dtype=torch.float64)
        sub = torch.randn(7, 3, generator=gen, dtype=torch.float64)
        fams = [
            [GroupPiece(w, 0), GroupPiece(b, 0)],
            [GroupPiece(conv, 0), GroupPiece(nxt, 1, None, torch.arange(12) // 4)],
            [GroupPiece(sub, 0, torch.tensor([1, 4, 5]), torch.tensor([0, 1, 2]))],
        ]
        return [w, b, conv, nxt, sub], fams

    tensors, fams = families()
    expected = [t.clone() for t in tensors]
    ref_tensors = [t.clone() for t in tensors]
    ref_fams = [
        [GroupPiece(ref_tensors[0], 0), GroupPiece(ref_tensors[1], 0)],
        [GroupPiece(ref_tensors[2], 0), GroupPiece(ref_tensors[3], 1, None, torch.arange(12) // 4)],
        [GroupPiece(ref_tensors[4], 0, torch.tensor([1, 4, 5]), torch.tensor([0, 1, 2]))],
    ]
    lams = [0.3, 0.05, 0.0]  # a zero strength leaves its family alone
    for pieces, n, lam in zip(ref_fams, [6, 3, 3], lams, strict=True):
        sliced_prox_(pieces, n, 0.5, lam)
    thresholds = torch.cat(
        [sliced_group_sizes(p, n).sqrt() * lam for p, n, lam in zip(fams, [6, 3, 3], lams, strict=True)]
    )
    batched_group_prox_(fams, [6, 3, 3], thresholds, 0.5)
    for got, want in zip(tensors, ref_tensors, strict=True):
        assert torch.allclose(got, want)
    assert torch.count_nonzero(tensors[0][2]) == 0
    assert not torch.equal(tensors[0], expected[0])  # something was shrunk
    assert torch.equal(tensors[4], expected[4])  # zero strength: untouched


def _trimmed_objective(x: torch.Tensor, z: torch.Tensor, step: float, lam: float, keep: int) -> torch.Tensor:
    """0.5 ||x - z||^2 + step * lam * sqrt(P) * (sum of all but the ``keep`` largest row norms of x)."""
    norms = x.norm(dim=1).sort().values
    return 0.5 * (x - z).pow(2).sum() + step * lam * math.sqrt(x.shape[1]) * norms[: len(norms) - keep].sum()


def test_trimmed_prox_is_the_minimizer_over_every_untrimmed_set() -> None:
    """Leaving the ``keep`` largest groups alone and soft-thresholding the rest beats every other choice of
    the groups to leave alone (each with its own exact prox), and random perturbations."""
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(6, 4, generator=gen, dtype=torch.float64) * torch.linspace(
        0.1, 1.5, 6, dtype=torch.float64
    )[torch.randperm(6, generator=gen)].unsqueeze(1)
    step, lam, keep = 0.5, 0.6, 2
    x = z.clone()
    thresholds = torch.full((6,), lam * math.sqrt(4), dtype=torch.float64)
    batched_group_prox_([[GroupPiece(x, 0)]], [6], thresholds, step, keep=[keep])
    best = _trimmed_objective(x, z, step, lam, keep)
    top = set(z.norm(dim=1).topk(keep).indices.tolist())
    assert all(torch.equal(x[i], z[i]) for i in top)  # the survivors are not shrunk
    assert torch.count_nonzero(x.norm(dim=1) == 0) >= 1 and not torch.equal(x, z)
    for free in itertools.combinations(range(6), keep):
        other = prox_sparse_group_lasso(z, step, lam)
        other[list(free)] = z[list(free)]
        assert _trimmed_objective(other, z, step, lam, keep) >= best - 1e-12
    for _ in range(200):
        other = x + 1e-3 * torch.randn(x.shape, generator=gen, dtype=torch.float64)
        assert _trimmed_objective(other, z, step, lam, keep) >= best - 1e-12


def test_trimmed_prox_is_exact_with_unequal_thresholds() -> None:
    """Groups of unequal size (or strength): the exact trimmed prox frees the groups whose penalty costs
    the most, which need not be the largest ones. Brute force over every set of free groups."""
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    tau = torch.rand(7, generator=gen, dtype=torch.float64) * 2.5  # step * t_g, very different per group
    step, keep = 0.5, 3

    def objective(x: torch.Tensor) -> torch.Tensor:
        terms = (tau * x.norm(dim=1)).sort().values  # the penalty drops its keep largest terms
        return 0.5 * (x - z).pow(2).sum() + terms[: len(terms) - keep].sum()

    x = z.clone()
    batched_group_prox_([[GroupPiece(x, 0)]], [7], tau / step, step, keep=[keep])
    best = objective(x)
    candidates = []
    for free in itertools.combinations(range(7), keep):
        other = z * torch.clamp(1 - tau / z.norm(dim=1), min=0).unsqueeze(1)
        other[list(free)] = z[list(free)]
        candidates.append(float(objective(other)))
        assert candidates[-1] >= float(best) - 1e-12
    assert float(best) == pytest.approx(min(candidates), abs=1e-12)
    by_norm = set(z.norm(dim=1).topk(keep).indices.tolist())
    freed = {i for i in range(7) if torch.equal(x[i], z[i])}
    assert freed != by_norm  # this draw is one where the largest groups are the wrong ones to free


def test_trimmed_strengths_match_the_batched_prox_and_penalty() -> None:
    """sliced_prox_ with per-group strengths from ``trimmed`` equals the batched prox with ``keep``; the
    penalty leaves out the kept groups."""
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(5, generator=gen, dtype=torch.float64)
    w2, b2 = w.clone(), b.clone()
    pieces = [GroupPiece(w, 0), GroupPiece(b, 0)]
    sq = sliced_group_sq_norms(pieces, 5)
    lam = trimmed(torch.full((5,), 0.8, dtype=torch.float64), sq, 3)
    assert int((lam == 0).sum()) == 3 and set(torch.nonzero(lam == 0).flatten().tolist()) == set(
        sq.topk(3).indices.tolist()
    )
    penalty = sliced_penalty(pieces, 5, lam)
    full = torch.full((5,), 0.8, dtype=torch.float64)  # per-group strengths, L1 part included
    assert torch.isclose(sliced_penalty(pieces, 5, full, 0.5), sliced_penalty(pieces, 5, 0.8, 0.5))
    smallest = sq.sqrt().sort().values[:2]
    assert torch.isclose(penalty, 0.8 * 2.0 * smallest.sum())  # sqrt(P) = 2: 3 weights and a bias
    sliced_prox_(pieces, 5, 0.4, lam)
    batched_group_prox_([[GroupPiece(w2, 0), GroupPiece(b2, 0)]], [5], torch.full((5,), 0.8 * 2.0), 0.4, [3])
    assert torch.allclose(w, w2) and torch.allclose(b, b2)
    with pytest.raises(ValueError, match="keep"):
        trimmed(lam, sq, -1)


def test_subgradient_matches_autograd() -> None:
    z = torch.randn(4, 5, dtype=torch.float64)
    weight, bias, pieces = _as_pieces(z)
    w = weight.clone().requires_grad_(True)
    b = bias.clone().requires_grad_(True)
    value = sliced_penalty([GroupPiece(w, 0), GroupPiece(b, 0)], 4, 0.7, 0.25)
    gw, gb = torch.autograd.grad(value, [w, b])
    grads = [torch.zeros_like(weight), torch.zeros_like(bias)]
    sliced_penalty_grad_(pieces, grads, 4, 0.7, 0.25)
    assert torch.allclose(grads[0], gw) and torch.allclose(grads[1], gb)


@pytest.mark.parametrize(
    ("lam", "alpha"), [(-1.0, 0.0), (float("nan"), 0.0), (float("inf"), 0.0), (0.1, 1.5), (0.1, -0.1)]
)
def test_bad_strength_or_mix(lam: float, alpha: float) -> None:
    with pytest.raises(ValueError, match="strength|L1 mix"):
        prox_sparse_group_lasso(torch.ones(2, 2), 1.0, lam, alpha)


def test_select_removable_keeps_min_width() -> None:
    idx, clamped = select_removable(torch.tensor([0.0, 0.0, 0.0]), min_keep=2)
    assert clamped and len(idx) == 1
    idx, clamped = select_removable(torch.tensor([0.0, 1.0, 0.0]))
    assert not clamped and idx.tolist() == [0, 2]
