"""A user's own LightningModule: no example input, their batch shapes, loading and exporting compressed checkpoints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lightning_compress import CompressibleMixin, GroupSparsity, StructuredPruning, load_compressed
from lightning_compress._checks import ArgumentError
from lightning_compress.surgery import get_history

ROOT = Path(__file__).resolve().parents[1]


class Blobs(Dataset):
    """Separable 16-feature data in the batch form a user picks: tensors, tuples or dicts."""

    def __init__(self, form: str = "tuple", n: int = 256, key: str = "x") -> None:
        gen = torch.Generator().manual_seed(0)
        self.y = torch.arange(n) % 4
        self.x = torch.randn(n, 16, generator=gen) * 0.3 + F.one_hot(self.y, 16).float() * 3
        self.form, self.key = form, key

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> Any:
        if self.form == "dict":
            return {self.key: self.x[i], "target": self.y[i]}
        return self.x[i], self.y[i]


class UserNet(pl.LightningModule):
    """Written as users write one: no example_input_array, its network in ``self.net``."""

    def __init__(self, hidden: int = 24, key: str = "x") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(16, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _xy(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return (batch[self.hparams.key], batch["target"]) if isinstance(batch, dict) else (batch[0], batch[1])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = self._xy(batch)
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = self._xy(batch)
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


class MixedNet(CompressibleMixin, UserNet):
    pass


def _hidden(model: UserNet) -> int:
    return model.net[0].out_features + model.net[2].out_features


def _fit(
    model: pl.LightningModule, loader: DataLoader, folder: Path, epochs: int = 3, **gs: Any
) -> pl.Trainer:
    trainer = pl.Trainer(
        max_epochs=epochs,
        callbacks=[
            GroupSparsity(strength=gs.pop("strength", 0.05), **gs),
            StructuredPruning(every_n_epochs=1),
        ],
        default_root_dir=folder,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, loader, loader)
    return trainer


@pytest.mark.parametrize("form", ["tuple", "dict"])
def test_example_input_comes_from_the_first_batch(tmp_path: Path, form: str) -> None:
    model = MixedNet(key="image" if form == "dict" else "x")
    loader = DataLoader(Blobs(form, key="image"), batch_size=32, shuffle=True)
    _fit(model, loader, tmp_path)
    assert model.example_input_array is not None and tuple(model.example_input_array.shape) == (1, 16)
    assert _hidden(model) < 48  # the group lasso ran from the first step and neurons went
    assert get_history(model)


def test_a_batch_without_a_known_input_key_says_how_to_fix_it(tmp_path: Path) -> None:
    loader = DataLoader(Blobs("dict", key="pixels"), batch_size=32)
    with pytest.raises(ValueError, match="example_input_array .*example_input="):
        _fit(MixedNet(key="pixels"), loader, tmp_path)


def test_example_input_argument_is_used_before_any_batch(tmp_path: Path) -> None:
    model = MixedNet(key="pixels")  # a batch key we do not know: the argument gives the example
    example = torch.zeros(1, 16)
    _fit(
        model,
        DataLoader(Blobs("dict", key="pixels"), batch_size=32, shuffle=True),
        tmp_path,
        example_input=example,
    )
    assert model.example_input_array is example and _hidden(model) < 48


@pytest.fixture
def compressed(tmp_path: Path) -> tuple[MixedNet, Path, DataLoader]:
    model = MixedNet()
    loader = DataLoader(Blobs(), batch_size=32, shuffle=True)
    trainer = _fit(model, loader, tmp_path)
    ckpt = tmp_path / "final.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=False)
    assert _hidden(model) < 48
    return model.eval(), ckpt, loader


def test_compressed_checkpoint_loads_into_the_users_class(
    compressed: tuple[MixedNet, Path, DataLoader],
) -> None:
    model, ckpt, loader = compressed
    x = Blobs().x[:20]
    reloaded = MixedNet.load_from_checkpoint(ckpt).eval()  # no example input set: the checkpoint keeps one
    torch.testing.assert_close(reloaded(x), model(x))
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    fresh = MixedNet()
    metrics = trainer.validate(fresh, loader, ckpt_path=str(ckpt), verbose=False)[0]
    assert _hidden(fresh) == _hidden(model) and metrics["val_acc"] > 0.9


def test_without_the_mixin_the_documented_helper_loads_it(
    compressed: tuple[MixedNet, Path, DataLoader],
) -> None:
    model, ckpt, _ = compressed
    x = Blobs().x[:20]
    with pytest.raises(RuntimeError, match="compression_history"):  # what users see without the mixin
        UserNet.load_from_checkpoint(ckpt)
    plain = load_compressed(UserNet(), ckpt).eval()
    torch.testing.assert_close(plain(x), model(x))
    inner = load_compressed(
        nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 24), nn.ReLU(), nn.Linear(24, 4)),
        ckpt,
        prefix="net.",
    )
    torch.testing.assert_close(inner.eval()(x), model(x))


def test_resume_of_a_users_module_replays_without_an_example(tmp_path: Path) -> None:
    loader = DataLoader(Blobs(), batch_size=32, shuffle=True)
    first = MixedNet()
    trainer = _fit(first, loader, tmp_path, epochs=2)
    ckpt = tmp_path / "mid.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=False)
    trainer = pl.Trainer(
        max_epochs=3,
        callbacks=[GroupSparsity(strength=0.05), StructuredPruning(every_n_epochs=1)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    again = MixedNet()
    trainer.fit(again, loader, loader, ckpt_path=str(ckpt))
    assert get_history(again)[: len(get_history(first))] == get_history(first)


def test_exported_program_runs_without_the_package(
    compressed: tuple[MixedNet, Path, DataLoader], tmp_path: Path
) -> None:
    model, ckpt, _ = compressed
    x = Blobs().x[:7]
    out = tmp_path / "export"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightning_compress.cli.main",
            "export",
            str(ckpt),
            "--out",
            str(out),
            "--model-class",
            "tests.test_user_project.MixedNet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    torch.save(x, out / "x.pt")
    check = "import sys, torch; sys.modules['lightning_compress'] = None; p = torch.export.load(sys.argv[1] + '/model.pt2').module(); torch.save(p(torch.load(sys.argv[1] + '/x.pt')), sys.argv[1] + '/y.pt')"
    subprocess.run([sys.executable, "-c", check, str(out)], check=True, timeout=300)
    torch.testing.assert_close(torch.load(out / "y.pt"), model(x).detach())
    state = torch.load(out / "state_dict.pt", weights_only=True)
    assert state["net.0.weight"].shape[0] == model.net[0].out_features


def test_neurons_reads_a_checkpoint_of_the_users_class(
    compressed: tuple[MixedNet, Path, DataLoader], capsys: pytest.CaptureFixture[str]
) -> None:
    from lightning_compress.cli.main import main

    model, ckpt, _ = compressed
    assert main(["neurons", str(ckpt), "--model-class", "tests.test_user_project.MixedNet"]) == 0
    report = capsys.readouterr().out
    assert "net.0" in report and str(model.net[0].out_features) in report


@pytest.mark.parametrize(
    "command", [["neurons"], ["export", "--out", "x"], ["compress", "--rank", "4", "--out", "x"]]
)
def test_a_config_given_for_a_checkpoint_is_one_line(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from lightning_compress.cli.main import main

    assert main([command[0], "configs/lenet300_fmnist.yaml", *command[1:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a YAML config, not a checkpoint" in err[0], err


def test_input_key_names_a_dict_batchs_input_for_every_callback(tmp_path: Path) -> None:
    model = MixedNet(key="pixels")  # a batch key we do not know: input_key names it
    loader = DataLoader(Blobs("dict", key="pixels"), batch_size=32, shuffle=True)
    trainer = pl.Trainer(
        max_epochs=3,
        callbacks=[
            GroupSparsity(strength=0.05, input_key="pixels"),
            StructuredPruning(every_n_epochs=1, input_key="pixels"),
        ],
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, loader)
    assert tuple(model.example_input_array.shape) == (1, 16) and _hidden(model) < 48
    with pytest.raises(ArgumentError, match="input_key"):
        StructuredPruning(input_key=3)  # type: ignore[arg-type]
