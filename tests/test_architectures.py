"""Depthwise, grouped and transposed convolutions and attention heads: groups, exact removal, replay, fit."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_compress.callbacks import GroupSparsity, StructuredPruning
from lightning_compress.models import Classifier, PatchTransformer, SmallMobileNet
from lightning_compress.surgery import (
    PrunedLayerNorm,
    PrunedMultiheadAttention,
    compress_zero_groups,
    count_params_and_macs,
    enable_history_restore,
    find_groups,
    get_history,
    is_width_family,
)

X = torch.randn(4, 1, 12, 12, generator=torch.Generator().manual_seed(0))
TOKENS = torch.randn(4, 6, 16, generator=torch.Generator().manual_seed(1))


def _mobile() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 4, 1), nn.Flatten(), nn.Linear(4 * 144, 3),
    )  # fmt: skip


def _grouped() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Conv2d(6, 8, 3, groups=2), nn.ReLU(), nn.Conv2d(8, 3, 1)
    )


def _decoder() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(6, 5, 2, stride=2), nn.BatchNorm2d(5), nn.ReLU(), nn.Conv2d(5, 1, 3, padding=1),
    )  # fmt: skip


class _Encoder(nn.Module):
    def __init__(self, batch_first: bool = True) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.embed = nn.Linear(16, 8)
        self.enc = nn.TransformerEncoderLayer(8, 4, 12, dropout=0.0, batch_first=batch_first)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x if self.batch_first else x.transpose(0, 1))
        h = self.enc(h)
        return self.head(h.mean(1 if self.batch_first else 0))


class _HandAttention(nn.Module):
    """Attention as users write it: separate q/k/v Linears, or one packed qkv Linear (timm's layout)."""

    def __init__(self, dim: int = 16, num_heads: int = 4, packed: bool = False) -> None:
        super().__init__()
        self.num_heads, self.head_dim, self.packed = num_heads, dim // num_heads, packed
        if packed:
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        else:
            self.q_proj, self.k_proj, self.v_proj = (
                nn.Linear(dim, dim),
                nn.Linear(dim, dim),
                nn.Linear(dim, dim),
            )
            self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h, d = self.num_heads, self.head_dim
        if self.packed:
            q, k, v = self.qkv(x).view(b, t, 3, h, d).permute(2, 0, 3, 1, 4)
        else:
            q, k, v = (p(x).view(b, t, h, d).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        out = nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, h * d)
        return self.proj(out) if self.packed else self.out_proj(out)


class _HandBlock(nn.Module):
    """A pre-norm transformer block around :class:`_HandAttention`, with an MLP and a head."""

    def __init__(self, packed: bool = False, dim: int = 16) -> None:
        super().__init__()
        self.embed, self.ln1, self.ln2 = nn.Linear(16, dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = _HandAttention(dim, packed=packed)
        self.fc1, self.fc2, self.head = nn.Linear(dim, 24), nn.Linear(24, dim), nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.attn(self.ln1(h))
        h = h + self.fc2(nn.functional.gelu(self.fc1(self.ln2(h))))
        return self.head(h.mean(1))


CASES: dict[str, tuple[Callable[[], nn.Module], torch.Tensor]] = {
    "attention_by_hand": (_HandBlock, TOKENS),
    "attention_packed_qkv": (lambda: _HandBlock(packed=True), TOKENS),
    "depthwise": (_mobile, X),
    "grouped": (_grouped, X),
    "transposed": (_decoder, X),
    "attention": (_Encoder, TOKENS),
    "attention_seq_first": (lambda: _Encoder(batch_first=False), TOKENS),
    "mobilenet": (
        lambda: SmallMobileNet(stages=((8, 1), (12, 2)), stem=8, expand=2),
        torch.randn(2, 1, 28, 28),
    ),
    "transformer": (lambda: PatchTransformer(dim=16, depth=2, heads=4, mlp=24), torch.randn(2, 1, 28, 28)),
}


def _zero(model: nn.Module, family, idxs: list[int]) -> None:
    """Zero the incoming slices of groups ``idxs`` (every position whose root is one of them)."""
    with torch.no_grad():
        for s in family.slices:
            if not s.incoming:
                continue
            t = getattr(model.get_submodule(s.module), s.param)
            roots = s.root if s.root is not None else torch.arange(t.shape[s.dim])
            positions = s.index if s.index is not None else torch.arange(len(roots))
            t.index_fill_(s.dim, positions[torch.isin(roots, torch.tensor(idxs))], 0.0)


def _groups(model: nn.Module, x: torch.Tensor) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # channels feeding a grouped conv are not grouped: said once
        return find_groups(model, x[:1])


@pytest.mark.parametrize("case", list(CASES))
def test_zero_groups_are_removed_exactly_exported_and_replayed(case: str) -> None:
    make, x = CASES[case]
    torch.manual_seed(0)
    model = make().eval()
    families = _groups(model, x)
    assert families, "no group found"
    for f in families:
        _zero(model, f, [0, f.num_groups - 1])  # one in the first block and one in the last
    before = model(x)
    params = count_params_and_macs(model, x[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = compress_zero_groups(model, x[:1])
    assert len(records) == len(families)
    after = count_params_and_macs(model, x[:1])
    assert after[0] < params[0] and after[1] < params[1]
    assert torch.allclose(model(x), before, atol=1e-5)
    exported = torch.export.export(model, (x,))
    assert torch.allclose(exported.module()(x), before, atol=1e-5)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    fresh = make().eval()
    enable_history_restore(fresh, x[:1])
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert get_history(fresh) == get_history(model)
    assert torch.allclose(fresh(x), before, atol=1e-5)


@pytest.mark.parametrize("batch_first", [True, False])
def test_the_residual_width_is_one_family_removed_from_every_block(batch_first: bool) -> None:
    torch.manual_seed(0)
    model = _Encoder(batch_first=batch_first).eval() if not batch_first else PatchTransformer(dim=16, depth=2)
    x = TOKENS if not batch_first else torch.randn(2, 1, 28, 28)
    (width,) = [f for f in _groups(model, x) if is_width_family(model, f)]
    attention = [n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
    assert {f"{n}.out_proj" for n in attention} <= {s.module for s in width.slices if s.incoming}
    _zero(model, width, [2, 5])
    before = model(x)
    assert compress_zero_groups(model, x[:1])[0]["kind"] == "prune_width"
    assert all(model.get_submodule(n).embed_dim == width.num_groups - 2 for n in attention)
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all(isinstance(m, PrunedLayerNorm) and m.full_width == width.num_groups for m in norms)
    assert torch.allclose(model(x), before, atol=1e-5)


@pytest.mark.parametrize("packed", [False, True])
def test_hand_written_attention_loses_whole_heads(packed: bool) -> None:
    torch.manual_seed(0)
    model = _HandBlock(packed=packed).eval()
    families = {f.name: f for f in _groups(model, TOKENS)}
    assert families["attn:heads"].num_groups == 4
    assert not any(
        {"attn.q_proj", "attn.qkv"} & set(f.layers) for f in families.values()
    )  # no q/k/v channels
    _zero(model, families["attn:heads"], [1, 2])
    before = model(TOKENS)
    assert compress_zero_groups(model, TOKENS[:1]) == [
        {"kind": "prune_heads", "module": "attn", "idxs": [1, 2]}
    ]
    assert model.attn.num_heads == 2
    assert torch.allclose(model(TOKENS), before, atol=1e-5)


def test_hand_written_attention_reshaping_with_its_input_width_is_left_out_with_a_warning() -> None:
    class Fixed(_HandAttention):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, t, c = x.shape
            q, k, v = (
                p(x).view(b, t, 4, c // 4).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj)
            )
            out = nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, c)
            return self.out_proj(out)

    model = nn.Sequential(nn.Linear(16, 16), Fixed(), nn.Linear(16, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        families = find_groups(model, TOKENS[:1])
    said = " ".join(str(w.message) for w in caught)
    assert "the heads of attention '1' are not grouped" in said
    assert "the input width of attention '1' is not grouped" in said
    assert [f.name for f in families] == ["1.out_proj"]  # what it writes is free; what it reads is not
    assert "the channels of '0' are not grouped: attention '1' reads them" in said


def test_grouped_conv_channels_are_removed_evenly_per_group() -> None:
    torch.manual_seed(0)
    model = _grouped().eval()
    family = next(f for f in _groups(model, X) if f.layers == ["2"])
    assert family.blocks == 2
    _zero(model, family, [0, 1, 5])  # two zero channels in the first group of four, one in the second
    before = model(X)
    compress_zero_groups(model, X[:1])
    conv = model[2]
    assert conv.out_channels == 6 and conv.out_channels % conv.groups == 0
    assert torch.allclose(model(X), before, atol=1e-5)


def test_channels_feeding_a_grouped_conv_stay_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="grouped convolution '2'"):
        families = find_groups(_grouped(), X[:1])
    assert [f.layers for f in families] == [["2"]]


def test_unsupported_layer_kind_still_gives_the_clear_error() -> None:
    model = nn.Sequential(nn.Linear(4, 6), nn.PReLU(6), nn.Linear(6, 2))
    with pytest.raises(
        ValueError, match=r"layer '1' \(PReLU\) holds parameters this library cannot group yet"
    ):
        find_groups(model, torch.zeros(1, 4))


@pytest.mark.parametrize("batch_first", [True, False])
def test_pruned_attention_with_every_head_matches_pytorch(batch_first: bool) -> None:
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(8, 2, batch_first=batch_first).eval()
    attn = PrunedMultiheadAttention(8, 2, 4, batch_first=batch_first).eval()
    attn.load_state_dict(ref.state_dict())
    q, kv = torch.randn(3, 5, 8), torch.randn(3, 7, 8)
    if not batch_first:
        q, kv = q.transpose(0, 1), kv.transpose(0, 1)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[:, -2:] = True
    mask = torch.rand(5, 7) > 0.8
    for kwargs in (
        {},
        {"key_padding_mask": pad, "attn_mask": mask},
        {"need_weights": False, "attn_mask": torch.randn(5, 7)},
        {"average_attn_weights": False},
    ):
        want, want_w = ref(q, kv, kv, **kwargs)
        got, got_w = attn(q, kv, kv, **kwargs)
        assert torch.allclose(got, want, atol=1e-5), kwargs
        assert (want_w is None) == (got_w is None) and (
            want_w is None or torch.allclose(got_w, want_w, atol=1e-6)
        )
    single = torch.randn(5, 8)  # unbatched
    assert torch.allclose(attn(single, single, single)[0], ref(single, single, single)[0], atol=1e-5)


class _Snapshot(pl.Callback):
    """The parameters at the start of the epoch after the prune."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 2:
            self.after_prune = {k: v.detach().clone() for k, v in pl_module.named_parameters()}


class _Regression(pl.LightningModule):
    """A user's plain LightningModule: any model, mean squared error to a fixed random target."""

    def __init__(self, model: nn.Module, example: torch.Tensor) -> None:
        super().__init__()
        self.model, self.example_input_array = model, example[:1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return nn.functional.mse_loss(self.model(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def _fit(
    module: pl.LightningModule, data: TensorDataset, tmp_path: Path, strength: float, keep: float
) -> _Snapshot:
    snap = _Snapshot()
    callbacks = [
        GroupSparsity(strength, stop_epoch=2, keep_ratio=keep, log_effective_size=False),
        StructuredPruning(epochs=[1], at_fit_end=False),
        snap,
    ]
    trainer = pl.Trainer(
        max_epochs=3, callbacks=callbacks, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(data, batch_size=16))
    return snap


@pytest.mark.parametrize("case", list(CASES))
def test_fit_with_trimmed_lasso_and_pruning_shrinks_every_family_and_every_layer_keeps_training(
    case: str, tmp_path: Path
) -> None:
    make, x = CASES[case]
    pl.seed_everything(0, verbose=False)
    model = make()
    families = _groups(model, x)
    widths = {f.name: f.num_groups for f in families}
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(32, *x.shape[1:], generator=gen)
    data = TensorDataset(inputs, torch.randn(model.eval()(inputs).shape, generator=gen))
    module = _Regression(model.train(), x)
    snap = _fit(module, data, tmp_path, strength=50.0, keep=0.5)  # all but the floor go to zero
    after = {f.name: f.num_groups for f in _groups(module.model, x)}
    shrunk = [n for n in widths if after[n] < widths[n]]
    assert shrunk == [n for n in widths if widths[n] > 1], (widths, after)
    for name, param in module.named_parameters():
        assert not torch.equal(param, snap.after_prune[name]), f"{name} did not update after the prune"


def test_fit_of_the_example_transformer_removes_heads_units_and_width(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    module = Classifier(
        "transformer_small",
        model_kwargs={"dim": 16, "depth": 2, "heads": 4, "mlp": 32},
        optimizer="adamw",
        lr=3e-3,
    )
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(64, 1, 28, 28, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    )
    snap = _fit(module, data, tmp_path, strength=50.0, keep=0.4)
    kinds = [r["kind"] for r in get_history(module)]
    assert {"prune_heads", "prune", "prune_width"} <= set(kinds)
    assert module.model.pos.shape[-1] == module.model.embed.out_features == 7  # ceil(0.4 * 16)
    for name, param in module.named_parameters():
        assert not torch.equal(param, snap.after_prune[name]), f"{name} did not update after the prune"


def test_single_head_attention_is_left_out_with_its_reason() -> None:
    class OneHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.num_heads, self.qkv, self.proj = 1, nn.Linear(8, 24), nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            return self.proj(nn.functional.scaled_dot_product_attention(q, k, v))

    model = nn.Sequential(nn.Linear(8, 8), OneHead(), nn.Linear(8, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        families = find_groups(model, torch.zeros(1, 4, 8))
    assert "the heads of attention '1' are not grouped: it has one key/value head" in " ".join(
        str(w.message) for w in caught
    )
    assert not any("1.qkv" in f.layers for f in families)
