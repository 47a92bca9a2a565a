from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from lightning_compress.data import read_idx, write_idx


def test_real_fashion_mnist_files_parse(real_fmnist: Path) -> None:
    images = read_idx(real_fmnist / "train-images-idx3-ubyte.gz")
    labels = read_idx(real_fmnist / "train-labels-idx1-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels.long()).tolist() == [6000] * 10
    test = read_idx(real_fmnist / "t10k-images-idx3-ubyte.gz")
    assert test.shape == (10000, 28, 28)
    assert 0 < images.float().mean() / 255 < 1


@pytest.mark.parametrize(
    "dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.float32, torch.float64]
)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path: Path, dtype: torch.dtype, suffix: str) -> None:
    data = (torch.arange(24).reshape(2, 3, 4) - 5).to(dtype)
    if dtype == torch.uint8:
        data = torch.arange(24, dtype=dtype).reshape(2, 3, 4)
    path = tmp_path / f"x{suffix}"
    write_idx(path, data)
    assert torch.equal(read_idx(path), data)


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, torch.zeros(10, 28, 28, dtype=torch.uint8))
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*gzip"):
        read_idx(path)


def test_truncated_payload_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    write_idx(path, torch.zeros(100, dtype=torch.uint8))
    raw = gzip.decompress(path.read_bytes())[:-7]
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(ValueError, match=r"labels.gz.*truncated.*100"):
        read_idx(path)


def test_bad_magic_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "not-idx.gz"
    path.write_bytes(gzip.compress(b"PK\x03\x04 this is a zip, not IDX"))
    with pytest.raises(ValueError, match="not-idx.gz.*magic"):
        read_idx(path)


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError):
        read_idx("/nonexistent/file.gz")
