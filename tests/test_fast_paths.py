"""The throughput paths: epoch-level metrics without per-step work, data read once."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

import lightning_compress.data.datamodule as datamodule
from lightning_compress.data import FashionMNISTDataModule
from lightning_compress.models import Classifier
from lightning_compress.sweep.schema import EarlyStopConfig
from lightning_compress.sweep.trial import StopFlag, TrialGuard
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
    guard = TrialGuard(EarlyStopConfig(), StopFlag(), check_every=1)
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


def test_a_second_data_module_reuses_the_normalized_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_idx_set(tmp_path / "d")
    calls: list[str] = []
    real = datamodule.IDXImageDataModule._images
    monkeypatch.setattr(
        datamodule.IDXImageDataModule, "_images", lambda self, key: calls.append(key) or real(self, key)
    )

    def made(**kwargs: object) -> FashionMNISTDataModule:
        dm = FashionMNISTDataModule(folder, batch_size=8, **{"val_size": 16, **kwargs})  # type: ignore[arg-type]
        dm.setup("fit")
        return dm

    a, b = made(), made()
    assert calls == ["train_images"]
    assert a._train is not None and b._train is not None
    assert torch.equal(a._train.images, b._train.images) and torch.equal(a.val_indices, b.val_indices)
    c, d = made(val_size=24), made(normalize="per_pixel")  # another split, another normalization
    assert calls == ["train_images"] * 3
    assert c._val is not None and len(c._val) == 24
    assert d._train is not None and not torch.equal(d._train.images, a._train.images)
    datamodule._SPLITS.clear()  # the bytes behind the cache were not changed by normalizing them
    e = made()
    assert e._train is not None and torch.equal(e._train.images, a._train.images)


@pytest.mark.parametrize("start", ["spawn", "fork"])
def test_a_bad_sweep_file_is_one_line_and_starts_no_worker(
    start: str, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    from lightning_compress.cli.main import main
    from lightning_compress.sweep import launch

    monkeypatch.setenv(launch.START_ENV, start)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbase: nowhere.yaml\nmethods: {}\n")
    assert main(["sweep", str(bad), "--workers", "2"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not multiprocessing.active_children()


def test_workers_start_fresh_when_cuda_is_already_up_in_the_sweep_process(
    tiny_idx_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    from lightning_compress.sweep.runner import run_sweep
    from tests.sweep_helpers import write_sweep

    contexts: list[str | None] = []
    real = multiprocessing.get_context
    monkeypatch.setattr(multiprocessing, "get_context", lambda m=None: contexts.append(m) or real(m))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # a forked child could not use it
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(tmp_path)
    sweep = write_sweep(tmp_path, tiny_idx_dir, n_trials=1)
    summary = run_sweep(str(sweep), [], workers=1)
    assert contexts == ["spawn"] and summary["budget_met"] and summary["worker_exit_codes"] == [0]
