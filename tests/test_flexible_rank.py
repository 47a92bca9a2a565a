"""Flexible-rank models (Yaguchi et al., Decomposable-Net): the layer form, the truncated-SVD gradient, the
global rank rule, taking a size after training, BatchNorm re-estimation, resume, export, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_compress._checks import ArgumentError
from lightning_compress.callbacks import FlexibleRank
from lightning_compress.functional.flexible_rank import global_ranks, low_rank_weight, svd_factors
from lightning_compress.models import Classifier
from lightning_compress.surgery import (
    count_params_and_macs,
    export_model,
    flexible_layers,
    make_flexible,
    make_plain,
    plan_size,
    recalibrate_batchnorm,
    set_size,
)
from lightning_compress.surgery.base import decode_history

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("grad", ["projected", "exact"])
def test_at_full_rank_a_flexible_layer_is_its_dense_layer(grad: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 25, 8))
    x = torch.randn(4, 3, 5, 5)
    dense = model(x)
    make_flexible(model, ["0", "3"], grad=grad)  # type: ignore[arg-type]
    for layer in flexible_layers(model).values():
        layer.refresh()
        layer.rank = min(layer.weight.reshape(layer.weight.shape[0], -1).shape)
    assert torch.allclose(model(x), dense, atol=1e-4)
    assert type(make_plain(model)[3]) is nn.Linear


def test_the_truncated_svd_gradient_matches_finite_differences_where_values_are_distinct() -> None:
    torch.manual_seed(0)
    for shape in ((7, 4), (4, 7)):
        w = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        probe = torch.randn(*shape, dtype=torch.float64)

        def f(weight: torch.Tensor, probe: torch.Tensor = probe) -> torch.Tensor:
            return (low_rank_weight(weight, svd_factors(weight), 2) * probe).sum()

        assert torch.autograd.gradcheck(f, (w,), eps=1e-6, atol=1e-5)


def test_the_truncated_svd_gradient_stays_finite_where_values_are_equal() -> None:
    w = torch.eye(5, dtype=torch.float64).requires_grad_()  # every singular value 1: the cut splits equals
    low_rank_weight(w, svd_factors(w), 2).pow(2).sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()
    # plain autograd through the SVD is not finite there: the clip is what keeps it so
    plain = torch.eye(5, dtype=torch.float64).requires_grad_()
    u, s, vh = torch.linalg.svd(plain)
    ((u[:, :2] * s[:2]) @ vh[:2]).pow(2).sum().backward()
    assert plain.grad is not None and not torch.isfinite(plain.grad).all()


def test_one_threshold_over_all_layers_decides_the_ranks() -> None:
    spectra = {"big": torch.tensor([10.0, 8.0, 6.0, 0.1]), "small": torch.tensor([1.0, 0.5])}
    assert global_ranks(spectra, 0.5) == {"big": 3, "small": 1}
    assert global_ranks(spectra, 0.5, min_rank=2) == {"big": 3, "small": 2}


def _lenet() -> Classifier:
    torch.manual_seed(0)
    return Classifier("lenet300_100", model_kwargs={"hidden": [64, 32]})


@pytest.mark.parametrize("measure", ["params", "macs"])
@pytest.mark.parametrize("share", [0.5, 0.2, 0.1, 0.05])
def test_set_size_meets_the_budget_from_below(measure: str, share: float) -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 64, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip
    x = torch.zeros(1, 1, 8, 8)
    dense = dict(zip(("params", "macs"), count_params_and_macs(model, x), strict=True))
    plan = plan_size(model, x, **{measure: share})  # type: ignore[arg-type]
    small = set_size(model, x, **{measure: share})  # type: ignore[arg-type]
    counted = dict(zip(("params", "macs"), count_params_and_macs(small, x), strict=True))
    assert counted[measure] <= share * dense[measure]
    assert (counted["params"], counted["macs"]) == (plan.params, plan.macs), "the plan counts exactly"
    assert counted[measure] > 0.8 * share * dense[measure], "not far below: the bisection keeps what fits"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"params": 0}, "params must be > 0"),
        ({"params": -1}, "params must be > 0"),
        ({"macs": 10**9}, "above the model's size"),
        ({"ratio": 1.5}, "ratio must be in (0, 1]"),
        ({"params": 0.5, "ratio": 0.5}, "exactly one"),
    ],
)
def test_a_bad_budget_is_one_line(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        plan_size(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2)), torch.zeros(1, 8), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"ratio_range": (0.5, 0.1)}, "ratio_range"),
        ({"ratio_range": (0.0, 0.5)}, "ratio_range"),
        ({"ratio_range": (0.1, 1.5)}, "ratio_range"),
        ({"ratio_range": 0.3}, "ratio_range"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
        ({"eps": 1.0}, "eps"),
        ({"grad": "autograd"}, "grad"),
        ({"min_rank": 0}, "min_rank"),
        ({"svd_every": 0}, "svd_every"),
        ({"passes": "three"}, "passes"),
    ],
)
def test_bad_arguments_are_one_line_naming_them(kwargs: dict, argument: str) -> None:
    with pytest.raises(ArgumentError) as err:
        FlexibleRank(**kwargs)
    assert err.value.argument == argument and "\n" not in str(err.value)


def _data(n: int = 256, seed: int = 0) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=gen)
    y = (x[:, 0, :14].mean((1, 2)) > x[:, 0, 14:].mean((1, 2))).long()  # learnable
    return TensorDataset(x, y)


def _fit(module: pl.LightningModule, root: Path, callback: FlexibleRank, ckpt: Path | None = None) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    every_epoch = ModelCheckpoint(dirpath=root, save_top_k=-1, filename="{epoch}")
    trainer = pl.Trainer(
        max_epochs=2, callbacks=[callback, every_epoch], logger=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, DataLoader(_data(), batch_size=32), ckpt_path=ckpt)  # the same order every epoch


@pytest.mark.parametrize("passes", ["both", "alternate"])
def test_resume_mid_fit_gives_the_uninterrupted_weights(tmp_path: Path, passes: str) -> None:
    def flexible() -> FlexibleRank:
        return FlexibleRank(ratio_range=(0.1, 0.6), min_rank=1, svd_every=3, passes=passes)  # type: ignore[arg-type]

    pl.seed_everything(0)
    straight = _lenet()
    _fit(straight, tmp_path / "a", flexible())
    pl.seed_everything(0)
    resumed = _lenet()
    _fit(resumed, tmp_path / "b", flexible(), ckpt=tmp_path / "a" / "epoch=0.ckpt")
    assert type(resumed.model[1]) is nn.Linear, "plain layers after the fit"
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_batchnorm_is_reestimated_and_helps_at_a_small_size(real_fmnist: Path, tmp_path: Path) -> None:
    from lightning_compress.config import build_datamodule, load_config

    cfg = load_config(
        ROOT / "configs" / "resnet_small_fmnist.yaml",
        [f"data.data_dir={real_fmnist}", "data.batch_size=128"],
    )
    datamodule = build_datamodule(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    torch.manual_seed(0)
    module = Classifier("resnet_small", lr=0.05)
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=60, limit_val_batches=0, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False,
        callbacks=[FlexibleRank(ratio_range=(0.05, 0.5), svd_every=10, draw="log_uniform")],
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    module.eval()
    x = module.example_input_array
    stale = set_size(module, x, macs=0.2)
    fresh = set_size(module, x, macs=0.2, batches=datamodule.train_dataloader(), bn_batches=20)
    norms = [m for m in fresh.modules() if isinstance(m, nn.BatchNorm2d)]
    old = [m for m in stale.modules() if isinstance(m, nn.BatchNorm2d)]
    assert any(not torch.allclose(a.running_var, b.running_var) for a, b in zip(norms, old, strict=True))
    assert not fresh.training and not stale.training

    def accuracy(model: nn.Module) -> float:
        hits = total = 0
        with torch.no_grad():
            for i, (xb, yb) in enumerate(datamodule.val_dataloader()):
                if i == 10:
                    break
                hits += int((model(xb).argmax(1) == yb).sum())
                total += len(yb)
        return hits / total

    assert accuracy(fresh) > accuracy(stale) + 0.02
    assert recalibrate_batchnorm(nn.Sequential(nn.Linear(2, 2)), [torch.zeros(1, 2)]) == 0
    kept = [m.running_var.clone() for m in norms]
    assert recalibrate_batchnorm(fresh, datamodule.train_dataloader(), 0) == 0, "none asked for"
    assert all(torch.equal(a, m.running_var) for a, m in zip(kept, norms, strict=True)), "statistics kept"


def test_a_size_saves_loads_with_weights_only_and_runs_without_this_package(tmp_path: Path) -> None:
    model = _lenet().model.eval()
    x = torch.randn(1, 1, 28, 28)
    small = set_size(model, x, params=0.2)
    buffer = tmp_path / "state.pt"
    torch.save(small.state_dict(), buffer)
    assert torch.load(buffer, weights_only=True).keys() == small.state_dict().keys()
    info = export_model(small, tmp_path / "exported", x)
    program = Path(info["program"])
    code = (
        "import sys, torch; sys.modules['lightning_compress'] = None\n"
        f"p = torch.export.load({str(program)!r}); x = torch.load({str(tmp_path / 'x.pt')!r})\n"
        "print(tuple(p.module()(x).shape))"
    )
    torch.save(x, tmp_path / "x.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "(1, 10)"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "lightning_compress.cli.main", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_sizes_writes_a_model_per_size_and_refuses_bad_sizes_first(
    tiny_idx_dir: Path, tmp_path: Path
) -> None:
    train = _cli(
        "train", "flexible_lenet300_fmnist", f"data.data_dir={tiny_idx_dir}", "data.val_size=16",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "output_dir=out", cwd=tmp_path,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    (final,) = tmp_path.glob("out/*/*/final.ckpt")
    state = torch.load(final, weights_only=True)
    assert not any(".0.weight" in k for k in state["state_dict"]), "the trained model is plain and dense"
    proc = _cli("sizes", str(final), "--params", "0.5", "0.1", "--out", "sizes", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "sizes" / "sizes.json").read_text())
    dense = 266610
    assert [r["size"] for r in rows] == [0.5, 0.1]
    assert all(r["params"] <= r["size"] * dense for r in rows) and rows[1]["params"] < rows[0]["params"]
    assert (tmp_path / "sizes" / "sizes.png").stat().st_size > 1000
    small = torch.load(tmp_path / rows[1]["checkpoint"], weights_only=True)["state_dict"]
    history = decode_history(next(v for k, v in small.items() if k.endswith("compression_history")))
    assert [r["kind"] for r in history] == ["factorize", "factorize"], "a size is its factorize records"
    for bad, needle in (
        (["--params", "0"], "--params"),
        (["--params", "5e9"], "above"),
        (["--ratio", "1.5"], "--ratio"),
    ):
        proc = _cli("sizes", str(final), *bad, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0], proc.stderr[-2000:]


def test_a_flexible_trial_adds_its_sizes_to_the_study_front(tiny_idx_dir: Path, tmp_path: Path) -> None:
    import optuna

    from .sweep_helpers import write_sweep

    flexible = {
        "compression": {"flexible_rank": {"ratio_range": [0.1, 0.5], "min_rank": 1, "svd_every": 5}},
        "search_space": {"compression.flexible_rank.alpha": {"type": "float", "low": 0.3, "high": 0.7}},
        "sizes": [0.5, 0.2],
    }
    sweep = write_sweep(tmp_path, tiny_idx_dir, n_trials=1, methods={"flexible_rank": flexible})
    proc = _cli("sweep", str(sweep), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "out" / "tiny" / "journal.log"))
    )
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    trained = [t for t in trials if "size_of" not in t.user_attrs]
    sizes = [t for t in trials if "size_of" in t.user_attrs]
    assert len(trained) == 1, "the sizes do not count toward the budget"
    assert sorted(t.user_attrs["share"] for t in sizes) == [0.2, 0.5]
    dense = trained[0].user_attrs["dense_params"]
    for t in sizes:
        assert t.user_attrs["size_of"] == trained[0].number and t.params == trained[0].params
        assert t.values[0] <= t.user_attrs["share"] * dense and Path(t.user_attrs["checkpoint"]).is_file()
    assert "a size of trial 0" in proc.stdout, "the report shows which trial a size came from"


def test_the_curve_is_logged_at_fit_end(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    pl.seed_everything(0)
    module = _lenet()
    trainer = pl.Trainer(
        max_epochs=1, logger=CSVLogger(tmp_path), enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, callbacks=[FlexibleRank(min_rank=1, svd_every=2, curve=(0.5, 0.2))],
    )  # fmt: skip
    loader = DataLoader(_data(), batch_size=32)
    trainer.fit(module, loader, loader)
    (metrics,) = tmp_path.glob("**/metrics.csv")
    header = metrics.read_text().splitlines()[0]
    assert "flexible_rank/val_acc@0.5" in header and "flexible_rank/val_acc@0.2" in header
    with pytest.raises(ArgumentError, match="curve"):
        FlexibleRank(curve=(0.5, 1.5))


class Conv1D(nn.Module):
    """Hugging Face's GPT-2 layer as it is written there: ``x @ W + b``, ``W`` stored ``(in, out)``."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.1)
        self.bias = nn.Parameter(torch.randn(nf) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.view(-1, x.size(-1)) @ self.weight + self.bias).view(*x.shape[:-1], self.nf)


@pytest.mark.parametrize("grad", ["projected", "exact"])
def test_hugging_face_conv1d_runs_at_any_rank_and_back(grad: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(Conv1D(12, 8), nn.ReLU(), Conv1D(4, 12))
    x = torch.randn(3, 5, 8)
    dense = model(x)
    make_flexible(model, ["0"], grad=grad)  # type: ignore[arg-type]
    layer = flexible_layers(model)["0"]
    layer.refresh()
    layer.rank = 8
    assert torch.allclose(model(x), dense, atol=1e-5)
    layer.rank = 2
    low = model(x)
    low.sum().backward()
    assert not torch.allclose(low, dense, atol=1e-3) and model[0].weight.grad is not None
    assert type(make_plain(model)[0]) is Conv1D and torch.allclose(model(x), dense, atol=1e-6)


class OwnLinear(nn.Linear):
    """A subclass with its own forward, as timm's ``Linear`` has."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias) + 0.0


def test_a_linear_subclass_keeps_its_class_and_forward_at_full_rank() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(OwnLinear(8, 6), nn.ReLU(), nn.Linear(6, 2))
    x = torch.randn(3, 8)
    dense = model(x)
    make_flexible(model, ["0"])
    layer = flexible_layers(model)["0"]
    assert isinstance(layer, OwnLinear) and type(layer).__name__ == "FlexibleOwnLinear"
    layer.refresh()
    layer.rank = 2
    assert not torch.allclose(model(x), dense, atol=1e-3)
    layer.rank = None
    assert torch.allclose(model(x), dense)
    assert type(make_plain(model)[0]) is OwnLinear


def test_taking_sizes_of_a_batchnorm_model_is_reproducible(tiny_idx_dir: Path, tmp_path: Path) -> None:
    from lightning_compress.run.sizes import take_sizes

    train = _cli(
        "train", "flexible_resnet_small_fmnist", f"data.data_dir={tiny_idx_dir}", "data.val_size=16",
        "data.batch_size=16", "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "output_dir=out",
        cwd=tmp_path,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    (final,) = tmp_path.glob("out/*/*/final.ckpt")
    results = []
    for global_seed in (1, 2):  # the process's own seed must not pick the BatchNorm batches
        torch.manual_seed(global_seed)
        results.append(
            [r["test_acc"] for r in take_sizes(final, [0.6, 1.0], by="macs", progress=False, bn_batches=3)]
        )
    assert results[0] == results[1]
