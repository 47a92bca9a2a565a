"""LowRankCompression in a run (config, resume) and the ``compress`` command on a trained checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lightning_compress.callbacks import LowRankCompression
from lightning_compress.cli.main import main
from lightning_compress.models import Classifier
from lightning_compress.surgery import get_history

CONFIG = Path(__file__).parents[1] / "configs" / "dalr_lenet300_fmnist.yaml"


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        str(CONFIG),
        f"data.data_dir={data}",
        "data.val_size=32",
        "data.batch_size=16",
        "trainer.enable_progress_bar=false",
        f"output_dir={out}",
        *extra,
    ]


def _run(out: Path) -> Path:
    (run,) = [p for p in out.glob("*/*") if p.is_dir()]
    return run


def test_compression_mid_fit_fine_tunes_and_resumes_without_compressing_twice(
    tiny_idx_dir: Path, tmp_path: Path
) -> None:
    budget = ["compression.low_rank_compression.at_epoch=0", "compression.low_rank_compression.params=0.1"]
    assert main(_args(tiny_idx_dir, tmp_path / "a", "trainer.max_epochs=1", *budget)) == 0
    run = _run(tmp_path / "a")
    first = json.loads((run / "summary.json").read_text())
    hidden = 784 * 300 + 300 * 100
    assert first["params"] - (first["dense_params"] - hidden) <= 0.1 * hidden  # the budget holds
    records = [
        r
        for r in get_history(Classifier.load_from_checkpoint(run / "final.ckpt"))
        if r["kind"] == "factorize"
    ]
    assert records
    last = run / "checkpoints" / "last.ckpt"
    resume = _args(tiny_idx_dir, tmp_path / "b", "trainer.max_epochs=3", *budget, f"resume_from={last}")
    assert main(resume) == 0
    resumed = Classifier.load_from_checkpoint(_run(tmp_path / "b") / "final.ckpt")
    assert [r for r in get_history(resumed) if r["kind"] == "factorize"] == records
    assert resumed.size()["params"] == first["params"]


def test_compress_command_writes_a_smaller_checkpoint(
    tiny_idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_compression = ["compression.low_rank_compression=null", "trainer.max_epochs=3"]
    assert main(_args(tiny_idx_dir, tmp_path / "dense", *no_compression)) == 0
    final = _run(tmp_path / "dense") / "final.ckpt"
    capsys.readouterr()
    out = tmp_path / "small.ckpt"
    args = ["compress", str(final), "--params", "0.2", "--out", str(out)]
    assert main([*args, "--finetune-epochs", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["params"] < summary["params_before"] and summary["test_acc"] > 0.3
    assert torch.load(out, weights_only=True)["state_dict"]
    restored = Classifier.load_from_checkpoint(out)
    assert restored.size()["params"] == summary["params"]
    assert json.loads(out.with_suffix(".ckpt.json").read_text())["layers"][0]["rank"] is not None


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--params", "0"], "--params"),
        (["--rank", "0"], "--rank"),
        (["--rank", "5000"], "--rank"),
        (["--params", "0.2", "--ridge", "-1"], "--ridge"),
        (["--params", "0.2", "--include", "nope"], "--include"),
    ],
)
def test_compress_bad_input_is_one_line(
    tiny_idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], flag: str
) -> None:
    assert (
        main(_args(tiny_idx_dir, tmp_path, "compression.low_rank_compression=null", "trainer.max_epochs=1"))
        == 0
    )
    final = _run(tmp_path) / "final.ckpt"
    capsys.readouterr()
    assert main(["compress", str(final), *extra, "--out", str(tmp_path / "x.ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err
    assert not (tmp_path / "x.ckpt").exists()


def test_compress_unknown_method_is_a_parse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compress", "any.ckpt", "--params", "0.2", "--method", "qr", "--out", "x.ckpt"])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--method" in last and "invalid choice: 'qr'" in last and "dalr" in last


def test_compress_a_missing_checkpoint_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "compress",
                str(tmp_path / "no.ckpt"),
                "--rank",
                "4",
                "--out",
                str(tmp_path / "x.ckpt"),
                "--config",
                str(CONFIG),
            ]
        )
        == 2
    )
    assert "not found" in capsys.readouterr().err


def test_a_split_model_runs_without_this_package(tmp_path: Path) -> None:
    """Exported, or saved as a weights-only state dict, a split model needs only torch to run."""
    import subprocess
    import sys

    from lightning_compress.models import LeNet300100
    from lightning_compress.surgery import compress_low_rank

    torch.manual_seed(0)
    model = LeNet300100()
    compress_low_rank(model, [torch.randn(32, 1, 28, 28)], method="dalr", rank=8)
    model.eval()
    x = torch.randn(2, 1, 28, 28)
    torch.save({"x": x, "y": model(x).detach()}, tmp_path / "io.pt")
    torch.export.save(torch.export.export(model, (x,)), tmp_path / "model.pt2")
    torch.save(model.state_dict(), tmp_path / "state.pt")
    code = f"""
import sys, torch
from torch import nn
io = torch.load({str(tmp_path / "io.pt")!r}, weights_only=True)
exported = torch.export.load({str(tmp_path / "model.pt2")!r}).module()
state = torch.load({str(tmp_path / "state.pt")!r}, weights_only=True)
state.pop("compression_history")
plain = nn.Sequential(
    nn.Flatten(), nn.Sequential(nn.Linear(784, 8, bias=False), nn.Linear(8, 300)), nn.ReLU(),
    nn.Sequential(nn.Linear(300, 8, bias=False), nn.Linear(8, 100)), nn.ReLU(), nn.Linear(100, 10))
plain.load_state_dict(state)
for net in (exported, plain):
    assert torch.allclose(net(io["x"]), io["y"], atol=1e-5)
assert not any(name.startswith("lightning_compress") for name in sys.modules)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("compression.low_rank_compression.energy=1.5", "compression.low_rank_compression.energy"),
        ("compression.low_rank_compression.ridge=-1", "compression.low_rank_compression.ridge"),
        ("compression.low_rank_compression.at_epoch=-2", "compression.low_rank_compression.at_epoch"),
    ],
)
def test_a_bad_section_value_is_named_before_training(
    tiny_idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, key: str
) -> None:
    args = _args(tiny_idx_dir, tmp_path, "compression.low_rank_compression.params=null", override)
    if "energy" not in override:
        args = _args(tiny_idx_dir, tmp_path, override)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and key in err, err
    assert not list(tmp_path.glob("*/*/final.ckpt"))


class _DictNet(pl.LightningModule):
    """A user's module fed dict batches (``pixel_values``/``labels``), loaders given to ``fit``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return nn.functional.cross_entropy(self(batch["pixel_values"]), batch["labels"])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val_loss", nn.functional.cross_entropy(self(batch["pixel_values"]), batch["labels"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


class _Dicts(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x, self.y = torch.randn(n, 1, 8, 8, generator=gen), torch.randint(0, 4, (n,), generator=gen)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"pixel_values": self.x[i], "labels": self.y[i]}


@pytest.mark.parametrize("data", ["train", "val"])
def test_calibration_on_loaders_given_to_fit_with_dict_batches(tmp_path: Path, data: str) -> None:
    pl.seed_everything(0, verbose=False)
    module = _DictNet()
    seen: list[int] = []
    callback = LowRankCompression(method="dalr", rank=4, data=data)
    original = callback._batches

    def counting(trainer: pl.Trainer) -> object:
        loader = original(trainer)
        seen.append(len(loader.dataset))  # type: ignore[union-attr]
        return loader

    callback._batches = counting  # type: ignore[method-assign]
    trainer = pl.Trainer(
        max_epochs=1,
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    train = torch.utils.data.DataLoader(_Dicts(64, 0), batch_size=16)
    val = torch.utils.data.DataLoader(_Dicts(32, 1), batch_size=16)
    trainer.fit(module, train, val)
    assert seen == [64 if data == "train" else 32]
    assert [r.rank for r in callback.results] == [4, 4]
    assert isinstance(module.net[1], nn.Sequential) and module.net[1][0].out_features == 4


def test_input_key_names_the_input_of_a_dict_batch_and_the_example_is_kept() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    batches = [{"pixels": torch.randn(16, 6), "target": torch.zeros(16)} for _ in range(3)]
    with pytest.raises(ValueError, match="pixels|input"):  # no usual key: the batch's input is not found
        LowRankCompression(rank=2).apply(nn.Sequential(*model), batches)
    results = LowRankCompression(rank=2, input_key="pixels").apply(model, batches)
    assert [r.rank for r in results] == [2, 2]
    assert "compression_inputs" in model.state_dict()
