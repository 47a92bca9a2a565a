from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lightning_compress.cli.main import main
from lightning_compress.models import Classifier
from tests.zoo import zoo_if_named

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
SMOKE = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
    "data.batch_size=32",
]


def _run_dir(output: Path) -> Path:
    (run,) = [p for p in output.glob("*/*") if p.is_dir()]
    return run


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_smoke_runs(
    path: Path, real_fmnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoo_if_named(path.read_text(), monkeypatch)  # a third-party model: from the zoo
    # a compression epoch past the one-epoch fit would never run (an error before training)
    at_once = ["compression.low_rank_compression.at_epoch=0"] if "at_epoch" in path.read_text() else []
    assert main(["train", str(path), *SMOKE, *at_once, f"output_dir={tmp_path}"]) == 0
    run = _run_dir(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 1 and 0.0 <= summary["test_acc"] <= 1.0
    assert 0 < summary["params"] <= summary["dense_params"]
    assert (run / "config.yaml").is_file() and (run / "logs" / "metrics.csv").is_file()
    state = torch.load(run / "final.ckpt", weights_only=True)
    assert "state_dict" in state
    restored = Classifier.load_from_checkpoint(run / "final.ckpt")
    assert restored.size()["params"] == summary["params"]


def test_training_learns_and_resumes(tiny_idx_dir: Path, tmp_path: Path) -> None:
    """Two epochs on a learnable tiny set, then resuming from last.ckpt for a third."""
    args = [
        "train",
        str(CONFIGS[0]),
        f"data.data_dir={tiny_idx_dir}",
        "data.val_size=16",
        "data.batch_size=16",
        "trainer.max_epochs=4",
        "trainer.enable_progress_bar=false",
        "optimizer.lr=0.05",
        f"output_dir={tmp_path / 'a'}",
    ]
    assert main(args) == 0
    run = _run_dir(tmp_path / "a")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["val_acc"] > 0.5  # 10 classes: chance is 0.1
    last = run / "checkpoints" / "last.ckpt"
    assert (
        main([*args[:-2], "trainer.max_epochs=5", f"resume_from={last}", f"output_dir={tmp_path / 'b'}"]) == 0
    )
    resumed = json.loads((_run_dir(tmp_path / "b") / "summary.json").read_text())
    assert resumed["epochs"] == 5


def test_compressed_training_and_neuron_report(
    tiny_idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gs = next(p for p in CONFIGS if p.name == "gs_lenet300_fmnist.yaml")
    args = [
        "train",
        str(gs),
        f"data.data_dir={tiny_idx_dir}",
        "data.val_size=16",
        "data.batch_size=16",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "compression.group_sparsity.strength=0.5",
        f"output_dir={tmp_path}",
    ]
    assert main(args) == 0
    run = _run_dir(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["params"] < summary["dense_params"]
    assert summary["widths"]["model.1"] < 300
    capsys.readouterr()
    assert main(["neurons", str(run / "final.ckpt")]) == 0
    table = capsys.readouterr().out
    (row,) = [line.split() for line in table.splitlines() if line.startswith("model.1 ")]
    assert int(row[1]) == summary["widths"]["model.1"]
    assert main(["neurons", str(tmp_path / "missing.ckpt")]) == 2
