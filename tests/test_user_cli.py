"""What a user meets first: LightningCLI YAML, the command line's help and version, top-level names,
shipped example configs, exporting a ``train`` checkpoint."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.cli import LightningCLI
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_compress import CompressibleMixin
from lightning_compress.callbacks._proximal import ProxSchedule, ProxScheduleName
from lightning_compress.cli.main import main
from lightning_compress.regularizers.group_lasso import Cost, CostName
from lightning_compress.surgery import CalibrationOrder, GroupMode, LowRankMethod, get_history
from lightning_compress.surgery.factorize.rank_rules import CalibrationOrderName, LowRankMethodName
from lightning_compress.surgery.groups import GroupModeName
from lightning_compress.surgery.groups.selectors import matches

from .test_user_project import Blobs, MixedNet

ROOT = Path(__file__).resolve().parents[1]


class BlobData(pl.LightningDataModule):
    def __init__(self, batch_size: int = 32) -> None:
        super().__init__()
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(Blobs(), batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(Blobs(), batch_size=self.batch_size)


YAML = """
seed_everything: 0
trainer:
  max_epochs: 3
  logger: false
  enable_progress_bar: false
  enable_model_summary: false
  enable_checkpointing: false
  default_root_dir: {root}
  callbacks:
    - class_path: lightning_compress.GroupSparsity
      init_args:
        strength: 0.05
        groups: {groups}
        include: [torch.nn.Linear]
    - class_path: lightning_compress.StructuredPruning
      init_args:
        every_n_epochs: 1
model:
  hidden: 24
"""


def _cli(tmp_path: Path, groups: str) -> LightningCLI:
    config = tmp_path / "fit.yaml"
    config.write_text(YAML.format(root=tmp_path, groups=groups))
    return LightningCLI(MixedNet, BlobData, args=["fit", "--config", str(config)], save_config_callback=None)


def test_lightning_cli_fits_from_yaml_with_type_names(tmp_path: Path) -> None:
    cli = _cli(tmp_path, "incoming")
    sparsity = cli.trainer.callbacks[0]
    assert sparsity.regularizer.include == [nn.Linear] or sparsity.regularizer.include == ["torch.nn.Linear"]
    assert get_history(cli.model) and cli.model.net[0].out_features + cli.model.net[2].out_features < 48


def test_lightning_cli_rejects_a_closed_choice_at_parse_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli(tmp_path, "channel")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Given value: channel" in err and "Expected a member of <enum 'GroupMode'>" in err
    assert "Traceback (most recent call last)" not in err


def test_closed_choices_are_literals_of_the_enums() -> None:
    for enum, literal in (
        (GroupMode, GroupModeName),
        (Cost, CostName),
        (ProxSchedule, ProxScheduleName),
        (LowRankMethod, LowRankMethodName),
        (CalibrationOrder, CalibrationOrderName),
    ):
        assert typing.get_args(literal) == tuple(m.value for m in enum)


def test_type_names_select_layers_like_types() -> None:
    conv, lin = nn.Conv2d(1, 2, 3), nn.Linear(2, 2)
    assert (
        matches("a", lin, ["torch.nn.Linear"])
        and matches("a", lin, ["Linear"])
        and not matches("a", conv, ["Linear"])
    )
    assert matches("features.0", conv, ["features.*"]) and not matches("head", lin, ["features.*"])


def test_version_and_help_show_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("lightning-compress 0.")
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: dalr)" in text and "{dalr,dalr_bias,svd,svd_bias}" in text and "(default: 0)" in text
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert "overrides of the sweep file" in " ".join(capsys.readouterr().out.split())


def test_top_level_names_import_without_the_extras() -> None:
    code = (
        "import sys, lightning_compress as lc; assert 'lightning' not in sys.modules, 'eager import';"
        "from lightning_compress import GroupSparsity, StructuredPruning, LowRank, LowRankCompression, CompressibleMixin;"
        "assert not {'optuna', 'wandb', 'plotly'} & set(sys.modules);"
        "print(GroupSparsity.__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "lightning_compress.callbacks.group_sparsity"


def _quick(tmp_path: Path, tiny_idx_dir: Path) -> list[str]:
    """Overrides for a one-epoch run on the tiny data."""
    return [
        "trainer.max_epochs=1",
        f"data.data_dir={tiny_idx_dir}",
        "data.val_size=16",
        f"output_dir={tmp_path}/runs",
    ]


def test_shipped_configs_are_found_by_name_from_anywhere(tmp_path: Path, tiny_idx_dir: Path) -> None:
    quick = _quick(tmp_path, tiny_idx_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_compress.cli.main", "train", "lenet300_fmnist", *quick],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\x1b[" not in proc.stdout + proc.stderr  # no progress-bar escapes in a log
    assert "Tip:" not in proc.stdout + proc.stderr
    assert main(["train", "no_such_config"]) == 2


def test_export_of_a_train_checkpoint_bakes_the_normalization_in(tmp_path: Path, tiny_idx_dir: Path) -> None:
    quick = [*_quick(tmp_path, tiny_idx_dir), "compression.group_sparsity.strength=0.05"]
    assert main(["train", "configs/gs_lenet300_fmnist.yaml", *quick]) == 0
    (final,) = (tmp_path / "runs").rglob("final.ckpt")
    assert main(["export", str(final), "--out", str(tmp_path / "exp")]) == 0
    from lightning_compress.run import load_checkpoint

    module = load_checkpoint(final).eval()
    raw = torch.rand(3, 1, 28, 28)
    program = torch.export.load(tmp_path / "exp" / "model.pt2").module()
    mean, std = 0.2860, 0.3530
    torch.testing.assert_close(program(raw), module((raw - mean) / std), atol=1e-5, rtol=1e-5)
    assert main(["export", str(final), "--out", str(tmp_path / "raw"), "--no-normalization"]) == 0
    plain = torch.export.load(tmp_path / "raw" / "model.pt2").module()
    torch.testing.assert_close(plain(raw), module(raw), atol=1e-5, rtol=1e-5)


def test_the_example_script_runs(tmp_path: Path, real_fmnist: Path) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import user_module
    finally:
        sys.path.remove(str(ROOT / "examples"))
    result = user_module.main(["--data", str(real_fmnist), "--out", str(tmp_path)])
    assert result["params"] < result["dense_params"] and result["val_acc"] > 0.7
    assert result["reload_max_abs_diff"] < 1e-5 and result["export_max_abs_diff"] < 1e-5


class GreyNet(CompressibleMixin, pl.LightningModule):
    """A user's own module over 28x28 grey images, with no test step."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        return nn.functional.cross_entropy(self(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_compress_reads_a_checkpoint_of_the_users_class(tmp_path: Path, tiny_idx_dir: Path) -> None:
    from lightning_compress.config import ConfigError
    from lightning_compress.run import compress_checkpoint, load_user_checkpoint

    trainer = pl.Trainer(
        max_steps=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    data = TensorDataset(torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,)))
    trainer.fit(GreyNet(), DataLoader(data, batch_size=8))
    ckpt = tmp_path / "user.ckpt"
    trainer.save_checkpoint(ckpt)
    with pytest.raises(ConfigError, match="--config"):  # no run folder: its data must be named
        compress_checkpoint(ckpt, tmp_path / "x.ckpt", model_class=GreyNet, method="svd", rank=4)
    summary = compress_checkpoint(
        ckpt,
        tmp_path / "small.ckpt",
        config="configs/lenet300_fmnist.yaml",
        overrides=(f"data.data_dir={tiny_idx_dir}", "data.val_size=16", "trainer.enable_progress_bar=false"),
        model_class="tests.test_user_cli.GreyNet",
        method="svd",
        rank=4,
    )
    assert summary["params"] < summary["params_before"] and summary["test_acc"] is None
    restored = load_user_checkpoint(tmp_path / "small.ckpt", GreyNet)  # no example input given
    assert sum(p.numel() for p in restored.parameters()) == summary["params"]
