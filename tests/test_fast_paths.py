"""The throughput paths: epoch-level metrics without per-step work, data read once."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

import lightning_compress.data.datamodule as datamodule
from lightning_compress.data import FashionMNISTDataModule
from lightning_compress.models import Classifier
from lightning_compress.sweep.schema import EarlyStopConfig
from lightning_compress.sweep.trial import TrialGuard
from tests.conftest import make_idx_set


def _quiet_trainer(**kwargs: object) -> pl.Trainer:
    return pl.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,  # type: ignore[arg-type]
    )


def test_epoch_metrics_equal_a_recount_over_the_loader(tiny_idx_dir: Path) -> None:
    dm = FashionMNISTDataModule(tiny_idx_dir, batch_size=10, val_size=32)
    module = Classifier("lenet300_100", lr=0.05)
    trainer = _quiet_trainer(max_epochs=2, log_every_n_steps=3, num_sanity_val_steps=0)
    trainer.fit(module, dm)
    losses, correct, count = 0.0, 0, 0
    module.eval()
    with torch.no_grad():
        for x, y in dm.val_dataloader():
            logits = module(x)
            losses += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            count += len(y)
    metrics = trainer.callback_metrics
    assert float(metrics["val/acc"]) == pytest.approx(correct / count)
    assert float(metrics["val/loss"]) == pytest.approx(losses / count, rel=1e-5)
    assert {"train/loss_epoch", "train/acc", "train/loss_step", "size/params"} <= set(metrics)
    tested = trainer.test(module, dm, verbose=False)[0]
    assert 0.0 <= tested["test/acc"] <= 1.0 and tested["test/loss"] > 0


def test_no_step_values_unless_asked(tiny_idx_dir: Path) -> None:
    dm = FashionMNISTDataModule(tiny_idx_dir, batch_size=10, val_size=32)
    trainer = _quiet_trainer(max_epochs=1, log_every_n_steps=0, num_sanity_val_steps=0)
    trainer.fit(Classifier("lenet300_100"), dm)
    assert "train/loss_step" not in trainer.callback_metrics
    assert "train/loss_epoch" in trainer.callback_metrics


def test_trial_guard_stops_a_diverged_loss_from_the_step_output() -> None:
    guard = TrialGuard(EarlyStopConfig(), threading.Event(), check_every=1)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False)
    module = pl.LightningModule()
    guard.on_train_batch_end(trainer, module, {"loss": torch.tensor(0.5)}, None, 0)
    with pytest.raises(FloatingPointError, match="nan"):
        guard.on_train_batch_end(trainer, module, {"loss": torch.tensor(float("nan"))}, None, 1)


def test_files_are_read_once_per_process_and_again_when_they_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_idx_set(tmp_path / "d")
    reads: list[str] = []
    real = datamodule.read_idx
    monkeypatch.setattr(datamodule, "read_idx", lambda p: reads.append(Path(p).name) or real(p))
    for _ in range(2):
        FashionMNISTDataModule(folder, batch_size=8, val_size=16).setup("fit")
    assert reads.count("train-images-idx3-ubyte.gz") == 1
    make_idx_set(folder, seed=1)  # new contents, newer file
    path = folder / "train-images-idx3-ubyte.gz"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    dm = FashionMNISTDataModule(folder, batch_size=8, val_size=16)
    dm.setup("fit")
    assert reads.count("train-images-idx3-ubyte.gz") == 2
