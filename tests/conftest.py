from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lightning_compress.data import FASHION_MNIST, write_idx

REAL_FMNIST = Path(FASHION_MNIST.system_dir)


def make_idx_set(folder: Path, n_train: int = 96, n_test: int = 32, seed: int = 0) -> Path:
    """A tiny MNIST-format data set whose labels are learnable (class k is a bright k-th row band)."""
    gen = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n) % 10
        images = torch.randint(0, 60, (n, 28, 28), generator=gen, dtype=torch.int64)
        for i, k in enumerate(labels.tolist()):
            images[i, 2 * k : 2 * k + 3, :] = 250
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images.to(torch.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels.to(torch.uint8))
    return folder


@pytest.fixture
def tiny_idx_dir(tmp_path: Path) -> Path:
    return make_idx_set(tmp_path / "tiny")


@pytest.fixture(scope="session")
def real_fmnist() -> Path:
    if not (REAL_FMNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(
            f"real Fashion-MNIST missing in {REAL_FMNIST}: run 'make setup' (installs dataset-fashion-mnist)"
        )
    return REAL_FMNIST


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(FASHION_MNIST.env_var, raising=False)
    monkeypatch.setenv("WANDB_MODE", os.environ.get("WANDB_MODE", "disabled"))
    torch.set_num_threads(1)
