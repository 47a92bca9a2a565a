"""Models users bring, built from their libraries' constructors (no weights): compressed end to end."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lightning_compress import CompressibleMixin, GroupSparsity, StructuredPruning
from lightning_compress.surgery import (
    compress_low_rank,
    compress_zero_groups,
    count_params_and_macs,
    enable_history_restore,
    find_groups,
    get_history,
)
from tests.zoo import zoo


def _torchvision(name: str) -> Callable[[], nn.Module]:
    return lambda: getattr(zoo("torchvision").models, name)(num_classes=4)


def _hf(kind: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        tr = zoo("transformers")
        small = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
        if kind == "bert":
            return tr.BertForSequenceClassification(
                tr.BertConfig(**small, intermediate_size=64, num_labels=4)
            )
        if kind == "gpt2":
            return tr.GPT2LMHeadModel(
                tr.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64)
            )
        return tr.LlamaForCausalLM(  # grouped-query attention, RMSNorm, rotary embeddings, gated MLP
            tr.LlamaConfig(**small, num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64)
        )

    return build


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "torchvision.resnet18": _torchvision("resnet18"),
    "torchvision.mobilenet_v3_small": _torchvision("mobilenet_v3_small"),
    "torchvision.efficientnet_b0": _torchvision("efficientnet_b0"),
    "torchvision.convnext_tiny": _torchvision("convnext_tiny"),
    "torchvision.vit_b_32": lambda: zoo("torchvision").models.vit_b_32(image_size=64, num_classes=4),
    "timm.resnet18": lambda: zoo("timm").create_model("resnet18", num_classes=4),
    "timm.convnext_atto": lambda: zoo("timm").create_model("convnext_atto", num_classes=4),
    "timm.vit_tiny": lambda: zoo("timm").create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, num_classes=4
    ),
    "timm.swin_tiny": lambda: zoo("timm").create_model(
        "swin_tiny_patch4_window7_224", img_size=64, window_size=4, num_classes=4
    ),
    "hf.bert": _hf("bert"),
    "hf.gpt2": _hf("gpt2"),
    "hf.llama": _hf("llama"),
}
SLOW = {"torchvision.swin_t": lambda: zoo("torchvision").models.swin_t(num_classes=4)}
X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
X64 = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
TOKENS = torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0))


def _input(name: str) -> torch.Tensor:
    return TOKENS if name.startswith("hf.") else X64 if ("vit_b" in name or "swin" in name) else X


def _logits(output: Any) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output


class _Logits(nn.Module):
    """The model with its output's logits as its output (a Hugging Face ``ModelOutput`` holds more)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _logits(self.inner(x))


def _randomize_zeros(model: nn.Module) -> nn.Module:
    """Weights a library initializes at zero (torchvision's ViT head) drawn at random: else the outputs
    compared are zero whatever the removal does."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and not p.abs().max():
                p.normal_(0.0, 0.05)
    return model


def _zero(model: nn.Module, family: Any, idxs: torch.Tensor) -> None:
    """Zero the incoming slices of the groups ``idxs``."""
    with torch.no_grad():
        for s in family.slices:
            if s.incoming:
                t = getattr(model.get_submodule(s.module), s.param)
                roots = s.root if s.root is not None else torch.arange(t.shape[s.dim])
                positions = s.index if s.index is not None else torch.arange(len(roots))
                t.index_fill_(s.dim, positions[torch.isin(roots, idxs)], 0.0)


@pytest.mark.parametrize("name", [*BUILDERS, *(pytest.param(n, marks=pytest.mark.slow) for n in SLOW)])
def test_half_of_every_family_zeroed_is_removed_exactly_exported_and_replayed(name: str) -> None:
    torch.manual_seed(0)
    build = {**BUILDERS, **SLOW}[name]
    model, x = _randomize_zeros(build().eval()), _input(name)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        families = find_groups(model, x[:1])
        find_groups(model, x[:1])  # found again (as every removal does): nothing said twice
    assert families
    messages = [str(w.message) for w in said if issubclass(w.category, UserWarning)]
    assert len(messages) == len(set(messages)), "a skipped family was warned about more than once"
    for f in families:
        _zero(model, f, torch.arange(0, f.num_groups, 2))
    before = _logits(model(x))
    params, macs = count_params_and_macs(model, x[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compress_zero_groups(model, x[:1])
    after = count_params_and_macs(model, x[:1])
    limit = 0.9 if name.startswith("hf.") else 0.7  # the heads and widths they keep are warned about
    assert after[0] < limit * params and after[1] < limit * macs
    scale = max(float(before.abs().max()), 1e-3)
    assert float((_logits(model(x)) - before).abs().max()) <= 1e-5 * max(scale, 1.0)
    exported = torch.export.export(_Logits(model), (x,))  # a Hugging Face model: its logits
    assert torch.allclose(exported.module()(x), before, atol=1e-5 * max(scale, 1.0))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = build().eval()
    enable_history_restore(fresh, x[:1])
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert get_history(fresh) == get_history(model)
    assert torch.allclose(_logits(fresh(x)), before, atol=1e-5 * max(scale, 1.0))


class _Images(Dataset):
    """Dict batches, as a Hugging Face style pipeline gives them."""

    def __init__(self, n: int = 32) -> None:
        gen = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(n, 3, 32, 32, generator=gen), torch.randint(0, 4, (n,), generator=gen)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.x[i], "labels": self.y[i]}


class ZooModule(CompressibleMixin, pl.LightningModule):
    """A user's LightningModule around a zoo model: no example input, dict batches."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = BUILDERS[name]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return F.cross_entropy(self(batch["pixel_values"]), batch["labels"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


TRAINED = ["torchvision.resnet18", "torchvision.mobilenet_v3_small", "torchvision.efficientnet_b0"]
TRAINED += ["timm.resnet18", "timm.convnext_atto", "timm.vit_tiny"]


@pytest.mark.parametrize("name", TRAINED)
def test_a_plain_trainer_prunes_a_zoo_model_and_the_checkpoint_reloads(name: str, tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    module = ZooModule(name)
    dense = sum(p.numel() for p in module.parameters())
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[GroupSparsity(strength=1.0, keep_ratio=0.25), StructuredPruning(every_n_epochs=1)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(_Images(), batch_size=8))
    assert sum(p.numel() for p in module.parameters()) < 0.9 * dense, "nothing was removed"
    path = tmp_path / "pruned.ckpt"
    trainer.save_checkpoint(path)
    restored = ZooModule.load_from_checkpoint(path)
    module.eval(), restored.eval()
    assert get_history(restored) == get_history(module)
    assert torch.allclose(restored(X), module(X), atol=1e-5)


class _ConvNeXtBlock(nn.Module):
    """ConvNeXt's block as its papers write it: depthwise conv, channels-last LayerNorm, MLP, residual."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(c), nn.Linear(c, 2 * c), nn.Linear(2 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dw(x).permute(0, 2, 3, 1))
        return x + self.fc2(F.gelu(self.fc1(y))).permute(0, 3, 1, 2)


def test_the_residual_width_through_depthwise_convs_is_removed_exactly() -> None:
    torch.manual_seed(0)
    c = 8
    model = nn.Sequential(
        nn.Conv2d(3, c, 4, stride=4),
        _ConvNeXtBlock(c),
        _ConvNeXtBlock(c),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c, 4),
    ).eval()
    families = find_groups(model, X[:1])
    width = next(f for f in families if "1.dw" in f.layers or any(s.module == "1.dw" for s in f.slices))
    _zero(model, width, torch.tensor([1, 4, 6]))
    before = model(X)
    compress_zero_groups(model, X[:1])
    dw: Any = model[1].dw
    assert (dw.in_channels, dw.out_channels, dw.groups) == (c - 3, c - 3, c - 3)
    assert torch.allclose(model(X), before, atol=1e-5)


def _encoder() -> nn.Module:
    """torch's own attention: it reads ``out_proj.weight`` without calling it."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn, self.fc = nn.MultiheadAttention(16, 2, batch_first=True), nn.Linear(16, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x + self.attn(x, x, x, need_weights=False)[0])

    return nn.Sequential(nn.Linear(3 * 32 * 32 // 64, 16), Block(), nn.Flatten(), nn.Linear(64 * 16, 4))


LOW_RANK = {"hf.gpt2": BUILDERS["hf.gpt2"], "hf.llama": BUILDERS["hf.llama"], "torch.encoder": _encoder}


@pytest.mark.parametrize("name", list(LOW_RANK))
def test_low_rank_splits_every_called_layer_and_the_checkpoint_reloads(name: str) -> None:
    torch.manual_seed(0)
    model = LOW_RANK[name]().eval()
    x = _input(name) if name.startswith("hf.") else X.reshape(2, 64, 48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = compress_low_rank(model, [x, x], method="dalr", param_ratio=0.5)
    split = {r.name for r in results if r.rank is not None}
    assert split, "nothing was split"
    if name == "hf.gpt2":  # Conv1D layers, stored (in, out), are split as the Linears they are
        assert "transformer.h.0.mlp.c_fc" in split
    assert not any(n.endswith("out_proj") for n in split)  # read by nn.MultiheadAttention, never called
    after = _logits(model(x))
    if name == "torch.encoder":
        assert "1.fc" in split
    fresh = LOW_RANK[name]().eval()
    enable_history_restore(fresh, x[:1])
    fresh.load_state_dict(model.state_dict())
    assert torch.allclose(_logits(fresh(x)), after, atol=1e-5)


@pytest.mark.parametrize("name", ["torchvision.resnet18", "timm.vit_tiny", "timm.convnext_atto"])
def test_low_rank_during_fit_then_dalr_reload_and_resume(name: str, tmp_path: Path) -> None:
    """LowRank's prox and split during a plain fit, DALR at its end, then the checkpoint reloads and
    resumes into a fresh module of the user's class."""
    from lightning_compress import LowRank, LowRankCompression

    pl.seed_everything(0, verbose=False)
    module = ZooModule(name)
    dense = sum(p.numel() for p in module.parameters())

    def trainer(epochs: int, callbacks: list[Any]) -> pl.Trainer:
        return pl.Trainer(
            max_epochs=epochs,
            callbacks=callbacks,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            default_root_dir=tmp_path,
        )

    loader = DataLoader(_Images(), batch_size=8)
    low_rank = LowRank(strength=0.5, every_n_steps=1, param_ratio=0.5)
    calibrate = LowRankCompression(method="dalr", param_ratio=0.5, data="train")
    fit = trainer(1, [low_rank, calibrate])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit.fit(module, loader)
    kinds = {r["kind"] for r in get_history(module)}
    assert "factorize" in kinds and sum(p.numel() for p in module.parameters()) < dense
    path = tmp_path / "low_rank.ckpt"
    fit.save_checkpoint(path)
    restored = ZooModule.load_from_checkpoint(path).eval()
    module.eval()
    assert torch.allclose(restored(X), module(X), atol=1e-5)
    again = ZooModule(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(2, []).fit(again, loader, ckpt_path=str(path))
    assert get_history(again) == get_history(module)
