"""Removing all-zero groups is exact, or does not happen, beside normalizations over features."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from lightning_compress.surgery import compress_zero_groups, find_groups


class UserRMSNorm(nn.Module):
    """An RMSNorm written the way language-model code often writes it (not torch's class)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class OffsetRMSNorm(UserRMSNorm):
    """Gemma's form, a scale of ``1 + weight``: not recognized as an RMS normalization, so inexact."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (1 + self.weight)


NORMS = {
    "layernorm-no-affine": lambda n: nn.LayerNorm(n, elementwise_affine=False),
    "groupnorm": lambda n: nn.GroupNorm(4, n),
    "offset-rmsnorm": OffsetRMSNorm,
}
RMS_NORMS = {"rmsnorm": lambda n: nn.RMSNorm(n, eps=1e-6), "user-rmsnorm": UserRMSNorm}


class UserMLP(nn.Module):
    """A user's own module: Linear -> Norm -> GELU -> Linear, beside a plain hidden layer."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.mid = nn.Linear(16, 16)
        self.norm = norm
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(nn.functional.gelu(self.norm(self.mid(torch.relu(self.inp(x))))))


class PreNormBlock(nn.Module):
    """A transformer-style MLP block: x + W2 gelu(W1 LN(x)), then a final LayerNorm and a head."""

    def __init__(self, d: int = 12, hidden: int = 24) -> None:
        super().__init__()
        self.embed = nn.Linear(6, d)
        self.ln1 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)
        self.ln2 = nn.LayerNorm(d)
        self.head = nn.Linear(d, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.fc2(nn.functional.gelu(self.fc1(self.ln1(h))))
        return self.head(self.ln2(h))


def _zero_rows(layer: nn.Linear, rows: slice) -> None:
    with torch.no_grad():
        layer.weight[rows] = 0
        layer.bias[rows] = 0


@pytest.mark.parametrize("norm", list(NORMS), ids=list(NORMS))
def test_a_layer_feeding_a_feature_norm_is_left_out_and_the_rest_is_removed_exactly(norm: str) -> None:
    torch.manual_seed(0)
    model = UserMLP(NORMS[norm](16)).eval()
    _zero_rows(model.inp, slice(0, 5))
    _zero_rows(model.mid, slice(0, 8))  # all-zero features that the norm would still count
    x = torch.randn(7, 8)
    before = model(x).detach()
    with pytest.warns(
        UserWarning, match="'mid' are not grouped: they reach the feature normalization 'norm'"
    ):
        records = compress_zero_groups(model, x[:1])
    assert records == [{"kind": "prune", "module": "inp", "idxs": [0, 1, 2, 3, 4]}]
    assert model.inp.out_features == 11 and model.mid.out_features == 16
    assert torch.allclose(model(x), before, atol=1e-6)


@pytest.mark.parametrize("norm", list(RMS_NORMS))
def test_an_rms_norm_over_the_family_keeps_its_divisor_and_is_removed_exactly_through(norm: str) -> None:
    torch.manual_seed(0)
    model = UserMLP(RMS_NORMS[norm](16)).eval()
    _zero_rows(model.mid, slice(0, 8))
    with torch.no_grad():
        model.norm.weight[:8] = 0
    x = torch.randn(7, 8)
    before = model(x).detach()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the norm's features are the family: nothing to warn about
        records = compress_zero_groups(model, x[:1])
    assert records == [{"kind": "prune_width", "module": "mid", "idxs": list(range(8))}]
    assert model.mid.out_features == 8 and model.norm.full_width == 16
    assert torch.allclose(model(x), before, atol=1e-6)


def test_an_affine_layernorm_over_the_family_is_removed_exactly_through() -> None:
    torch.manual_seed(0)
    model = UserMLP(nn.LayerNorm(16)).eval()
    _zero_rows(model.mid, slice(0, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no feature-norm warning: the LayerNorm's features are the family
        (family,) = [f for f in find_groups(model, torch.zeros(1, 8)) if f.name == "mid"]
    assert {s.module for s in family.slices if s.incoming} == {"mid", "norm"}
    x = torch.randn(7, 8)
    before = model(x).detach()
    assert compress_zero_groups(model, x[:1]) == []  # the LayerNorm's scale and shift are not zero yet
    with torch.no_grad():
        model.norm.weight[:8] = 0
        model.norm.bias[:8] = 0
    before = model(x).detach()
    records = compress_zero_groups(model, x[:1])
    assert records == [{"kind": "prune_width", "module": "mid", "idxs": list(range(8))}]
    assert model.mid.out_features == 8 and model.norm.normalized_shape == (8,) and model.norm.full_width == 16
    assert torch.allclose(model(x), before, atol=1e-6)


def test_transformer_style_block_removes_mlp_units_and_residual_features_exactly() -> None:
    torch.manual_seed(0)
    model = PreNormBlock().eval()
    _zero_rows(model.fc1, slice(0, 10))  # MLP neurons: gelu(0) = 0, removable exactly
    for layer in (model.fc2, model.embed):  # residual-stream features 0-3, with the LayerNorms' entries
        _zero_rows(layer, slice(0, 4))
    with torch.no_grad():
        for norm in (model.ln1, model.ln2):
            norm.weight[:4] = 0
            norm.bias[:4] = 0
    x = torch.randn(5, 6)
    before = model(x).detach()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        families = find_groups(model, x[:1])
        compress_zero_groups(model, x[:1])
    assert sorted(f.num_groups for f in families) == [12, 24]
    assert model.fc1.out_features == 14 and model.fc2.out_features == 8 and model.embed.out_features == 8
    assert model.head.in_features == 8 and model.ln1.full_width == model.ln2.full_width == 12
    assert torch.allclose(model(x), before, atol=1e-6)


def test_batchnorm_channels_are_still_grouped() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 2)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no feature-norm warning for BatchNorm
        assert [f.name for f in find_groups(model, torch.zeros(1, 1, 28, 28))] == ["0"]
