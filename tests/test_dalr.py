"""DALR and SVD compression on data: the closed form's guarantees, the surgery, and bad input."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from lightning_compress._checks import ArgumentError
from lightning_compress.functional import (
    LayerSpectrum,
    allocate_ranks,
    as_matrix,
    bias_compensation,
    dalr_factors,
    output_error,
    truncated_svd,
)
from lightning_compress.surgery import (
    apply_history,
    capture_inputs,
    compress_low_rank,
    get_history,
    input_statistics,
    layer_input_rows,
)


def _correlated(n: int, p: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(n, n, generator=g, dtype=torch.float64) * torch.logspace(0, -3, n, dtype=torch.float64)
    return mix @ torch.randn(n, p, generator=g, dtype=torch.float64)  # n x p, decaying spectrum


@pytest.mark.parametrize("seed", range(5))
def test_dalr_output_error_never_above_truncated_svd(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(12, 20, generator=g, dtype=torch.float64)
    x = _correlated(20, 200, seed)
    xxt = x @ x.T
    for k in range(1, 12):
        a, b = dalr_factors(w, k, xxt=xxt)
        sa, sb = truncated_svd(w, k)
        dalr, svd = output_error(w, a, b, xxt), output_error(w, sa, sb, xxt)
        assert dalr <= svd * (1 + 1e-9) + 1e-12
        assert math.isclose(dalr, float(((w @ x - a @ b @ x) ** 2).sum()), rel_tol=1e-6)
    a, b = dalr_factors(w, 4, xxt=xxt)
    sa, sb = truncated_svd(w, 4)
    assert output_error(w, a, b, xxt) < 0.9 * output_error(w, sa, sb, xxt)  # strictly better here


def test_dalr_equals_truncated_svd_on_white_inputs() -> None:
    torch.manual_seed(0)
    w = torch.randn(10, 16, dtype=torch.float64)
    a, b = dalr_factors(w, 3, xxt=7.0 * torch.eye(16, dtype=torch.float64))
    sa, sb = truncated_svd(w, 3)
    assert torch.allclose(a @ b, sa @ sb, atol=1e-10)


def test_zzt_form_equals_the_xxt_form() -> None:
    torch.manual_seed(0)
    w = torch.randn(6, 30, dtype=torch.float64)
    x = _correlated(30, 100)
    a1, b1 = dalr_factors(w, 2, xxt=x @ x.T)
    a2, b2 = dalr_factors(w, 2, zzt=(w @ x) @ (w @ x).T)
    assert torch.allclose(a1 @ b1, a2 @ b2, atol=1e-9)


@pytest.mark.parametrize("ridge", [0.0, 0.01, 0.5])
def test_closed_form_matches_brute_force_least_squares(ridge: float) -> None:
    torch.manual_seed(1)
    w = torch.randn(8, 12, dtype=torch.float64)
    x = _correlated(12, 60, 3)
    xxt = x @ x.T
    a, b = dalr_factors(w, 3, xxt=xxt, ridge=ridge)
    lam = ridge * float(torch.diagonal(xxt).mean())
    target = a.T @ w @ x  # B minimises ||A^T Z - B X||^2 + lam ||B||^2 for the chosen A
    design = torch.cat([x, math.sqrt(lam) * torch.eye(12, dtype=torch.float64)], 1)
    padded = torch.cat([target, torch.zeros(3, 12, dtype=torch.float64)], 1)
    brute = np.linalg.lstsq(design.T.numpy(), padded.T.numpy(), rcond=None)[0].T
    assert np.allclose(b.numpy(), brute, atol=1e-8)


@pytest.mark.parametrize("ridge", [0.0, 1e-3])
def test_rank_deficient_moments_give_finite_factors(ridge: float) -> None:
    torch.manual_seed(2)
    w = torch.randn(6, 40)
    x = torch.randn(40, 5)  # fewer samples than inputs
    x[:10] = 0.0  # dead pixels
    a, b = dalr_factors(w, 3, xxt=(x @ x.T).double(), ridge=ridge)
    assert bool(torch.isfinite(a).all() and torch.isfinite(b).all())
    assert a.dtype == w.dtype


def test_bias_compensation_removes_the_mean_residual() -> None:
    torch.manual_seed(3)
    w, bias = torch.randn(5, 9, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    x = torch.randn(9, 300, dtype=torch.float64) + 2.0
    a, b = truncated_svd(w, 2)
    new_bias = bias_compensation(w, a, b, bias, x.mean(1))
    mean_error = ((w @ x + bias[:, None]) - (a @ b @ x + new_bias[:, None])).mean(1)
    assert torch.allclose(mean_error, torch.zeros(5, dtype=torch.float64), atol=1e-10)


def test_streamed_output_moments_equal_the_projected_inputs() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 4))
    data = [torch.randn(7, 30) for _ in range(3)]
    w = model[0].weight.detach()
    stats = input_statistics(model, ["0"], data, through={"0": w})
    z = torch.cat(data).double() @ w.double().T
    assert torch.allclose(stats["0"].xxt, z.T @ z, atol=1e-8)
    assert stats["0"].samples == 21
    mean_only = input_statistics(model, ["0"], data, second_moments=False)["0"]
    assert mean_only.xxt.numel() == 0 and torch.allclose(mean_only.mean, torch.cat(data).double().mean(0))


def _output_error(model: nn.Module, other: nn.Module, data: list[torch.Tensor]) -> float:
    with torch.no_grad():
        return sum(float(((model(x) - other(x)) ** 2).sum()) for x in data)


def _copy(model: nn.Module) -> nn.Module:
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_conv_with_stride_and_padding_keeps_the_guarantee() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1))
    smooth = nn.AvgPool2d(3, stride=1, padding=1)  # correlated pixels: DALR has something to find
    data = [smooth(torch.randn(4, 3, 12, 12)) for _ in range(3)]
    dense = _copy(model)
    errors = {}
    for method in ("dalr", "svd"):
        net = _copy(dense)
        (result,) = compress_low_rank(net, data, method=method, include=["0"], rank=4)
        assert result.rank == 4 and result.params_after == 4 * (16 + 27)
        errors[method] = _output_error(dense, net, data)
        with torch.no_grad():
            energy = sum(float(((dense(x) - dense[0].bias[:, None, None]) ** 2).sum()) for x in data)
        assert result.relative_error is not None
        assert math.isclose(result.relative_error, errors[method] / energy, rel_tol=1e-4)
    assert errors["dalr"] < errors["svd"]


class TinyBlock(nn.Module):
    """A pre-norm transformer block with explicit projections, as many user models write it."""

    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.head = nn.Linear(d, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.norm1(x)
        q, k, v = (p(h).view(b, t, self.heads, -1).transpose(1, 2) for p in (self.q, self.k, self.v))
        attn = nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.o(attn.transpose(1, 2).reshape(b, t, d))
        x = x + self.down(torch.relu(self.up(self.norm2(x))))
        return self.head(x.mean(1))


def test_a_transformer_block_is_compressed_with_every_projection() -> None:
    torch.manual_seed(0)
    block = TinyBlock()
    data = [torch.randn(4, 6, 16) @ torch.diag(torch.logspace(0, -2, 16)) for _ in range(3)]
    dense = _copy(block)
    results = compress_low_rank(block, data, method="dalr", params=0.5)
    assert [r.name for r in results] == ["q", "k", "v", "o", "up", "down"]
    assert sum(r.params_after for r in results) <= 0.5 * sum(r.params_before for r in results)
    assert any(r.rank is not None for r in results)
    with torch.no_grad():
        energy = sum(float((dense(x) ** 2).sum()) for x in data)
    assert _output_error(dense, block, data) < 0.05 * energy
    with torch.no_grad():
        assert torch.isfinite(block(data[0])).all()


def _by_order(*orders: str) -> tuple[nn.Module, dict[str, nn.Module], list[torch.Tensor]]:
    """A three-layer MLP, and copies of it whose first two layers are compressed in each order."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 2))
    data = [torch.randn(32, 20) @ torch.diag(torch.logspace(0, -2, 20)) for _ in range(4)]
    dense = _copy(model)
    nets = {}
    for order in orders:
        nets[order] = _copy(dense)
        compress_low_rank(nets[order], data, include=["0", "2"], rank=3, order=order)
    return dense, nets, data


def test_sequential_calibration_fits_the_compressed_inputs() -> None:
    dense, nets, data = _by_order("original", "sequential")
    # layer "2" on the inputs its compressed predecessor produces: sequential is the least-squares optimum
    x = torch.cat(data)
    seen = capture_inputs(nets["sequential"], ["2.0"], x)["2.0"]
    w = dense[2].weight.detach()
    for_order = {}
    for order, net in nets.items():
        net.requires_grad_(False)
        pair = net.get_submodule("2")
        for_order[order] = float(((seen @ w.T - pair(seen) + pair[1].bias) ** 2).sum())
    assert for_order["sequential"] <= for_order["original"] + 1e-6
    assert not torch.allclose(nets["sequential"][2][0].weight, nets["original"][2][0].weight)


def test_compressed_model_replays_and_loads_weights_only(tmp_path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 2))
    data = [(torch.randn(16, 20), torch.zeros(16)) for _ in range(2)]
    compress_low_rank(model, data, method="svd_bias", rank=3)
    path = tmp_path / "model.pt"
    torch.save({"state_dict": model.state_dict(), "history": get_history(model)}, path)
    saved = torch.load(path, weights_only=True)
    fresh = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 2))
    apply_history(fresh, saved["history"], torch.zeros(1, 20))
    fresh.load_state_dict(saved["state_dict"])
    x = torch.randn(5, 20)
    assert torch.equal(fresh(x), model(x))


def test_budget_allocation_respects_the_budget_and_favours_the_steep_layer() -> None:
    steep = LayerSpectrum(torch.tensor([100.0, 1.0, 0.1, 0.0, 0.0, 0.0]), (6, 60))
    flat = LayerSpectrum(torch.ones(6), (6, 60))
    ranks = allocate_ranks({"steep": steep, "flat": flat}, budget=6 * 66)
    assert sum(s.cost(ranks[n]) for n, s in {"steep": steep, "flat": flat}.items()) <= 6 * 66
    assert ranks["flat"] > ranks["steep"]  # type: ignore[operator]
    with pytest.raises(ValueError, match="below rank 1"):
        allocate_ranks({"steep": steep, "flat": flat}, budget=100)
    assert allocate_ranks({"flat": flat}, budget=360) == {"flat": None}  # dense fits: stays dense


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 2))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"rank": 0}, "rank"),
        ({"rank": 17}, "rank"),
        ({"energy": 1.5}, "energy"),
        ({"params": 0}, "params"),
        ({"params": 10_000}, "params"),
        ({"rank": 2, "ridge": -1.0}, "ridge"),
        ({"rank": 2, "include": ["nope"]}, None),
        ({"rank": 2, "method": "qr"}, "method"),
        ({}, "rank"),
    ],
)
def test_bad_input_is_one_clear_error(kwargs: dict, argument: str | None) -> None:
    data = [torch.randn(4, 20)]
    with pytest.raises((ArgumentError, ValueError)) as err:
        compress_low_rank(_model(), data, **kwargs)
    if argument is not None:
        assert isinstance(err.value, ArgumentError) and err.value.argument == argument
    else:
        assert "nope" in str(err.value)


def test_an_empty_loader_is_refused() -> None:
    with pytest.raises(ArgumentError, match="no batch"):
        compress_low_rank(_model(), [], rank=2)


def test_conv_rows_are_what_dalr_sees() -> None:
    conv = nn.Conv2d(2, 6, 3, stride=2, padding=1)
    x = torch.randn(3, 2, 7, 7)
    rows = layer_input_rows(conv, x).double()
    a, b = dalr_factors(conv.weight, 2, xxt=rows.T @ rows)
    assert a.shape == (6, 2) and b.shape == (2, 18) and as_matrix(conv.weight).shape == (6, 18)


def test_corrected_calibration_fits_the_original_outputs_from_the_compressed_inputs() -> None:
    dense, nets, data = _by_order("sequential", "corrected")
    for net in (dense, *nets.values()):
        net.requires_grad_(False)
    x = torch.cat(data)
    original = capture_inputs(dense, ["2"], x)["2"] @ dense[2].weight.detach().T  # W X_ref
    errors = {}
    for order, net in nets.items():
        seen = capture_inputs(net, ["2.0"], x)["2.0"]  # both first layers are the same: same inputs
        pair = net.get_submodule("2")
        errors[order] = float(((original - (pair(seen) - pair[1].bias)) ** 2).sum())
    assert errors["corrected"] < errors["sequential"]


@pytest.mark.parametrize("width", [8, 40])  # 40 > 12 outputs: the statistics are streamed as Z Z^T
def test_centered_dalr_with_bias_compensation_is_never_worse(width: int) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(width, 12), nn.ReLU(), nn.Linear(12, 2))
    data = [torch.rand(64, width) @ torch.diag(torch.logspace(0, -1, width)) + 3.0 for _ in range(3)]
    dense = _copy(model)
    errors = {}
    for method in ("dalr", "dalr_bias"):
        net = _copy(dense)
        compress_low_rank(net, data, method=method, include=["0"], rank=2)
        net.requires_grad_(False), dense.requires_grad_(False)
        errors[method] = sum(float(((dense[0](x) - net[0](x)) ** 2).sum()) for x in data)
    assert errors["dalr_bias"] < errors["dalr"]


def test_a_mac_budget_counts_conv_positions() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 32), nn.Linear(32, 2)
    )
    data = [nn.functional.avg_pool2d(torch.randn(4, 3, 10, 10), 3, 1, 0) for _ in range(3)]  # 8 x 8 images
    results = compress_low_rank(model, data, method="dalr", include=["0", "3"], macs=0.3)
    positions = {"0": 64, "3": 1}
    dense = sum(r.params_before * positions[r.name] for r in results)
    kept = sum(r.params_after * positions[r.name] for r in results)
    assert kept <= 0.3 * dense
    assert kept > 0.3 * dense - 64 * (16 + 27)  # the budget is used up to one conv rank
