from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lightning_compress.data import (
    FASHION_MNIST,
    FashionMNISTDataModule,
    IDXDatasetSpec,
    IDXImageDataModule,
    download_file,
    file_checksum,
)


def test_real_split_is_deterministic_and_disjoint(real_fmnist: Path) -> None:
    a = FashionMNISTDataModule(batch_size=512, val_size=5000, split_seed=3)
    b = FashionMNISTDataModule(batch_size=512, val_size=5000, split_seed=3)
    a.setup("fit")
    b.setup("fit")
    assert a._train is not None and a._val is not None and b._val is not None
    assert len(a._train) == 55000 and len(a._val) == 5000
    assert torch.equal(a._val.images, b._val.images)
    assert a.train_indices is not None and a.val_indices is not None
    assert torch.equal(a.val_indices, b.val_indices)
    train, val = set(a.train_indices.tolist()), set(a.val_indices.tolist())
    assert not train & val and len(train | val) == 60000
    x, y = next(iter(a.train_dataloader()))
    assert x.shape == (512, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(float(a._train.images.mean())) < 0.05 and abs(float(a._train.images.std()) - 1) < 0.05


def test_other_seed_gives_other_split(tiny_idx_dir: Path) -> None:
    a = FashionMNISTDataModule(tiny_idx_dir, val_size=20, split_seed=0)
    b = FashionMNISTDataModule(tiny_idx_dir, val_size=20, split_seed=1)
    a.setup("fit")
    b.setup("fit")
    assert a._val is not None and b._val is not None
    assert not torch.equal(a._val.labels, b._val.labels) or not torch.equal(a._val.images, b._val.images)


def test_missing_directory_says_how_to_get_data(tmp_path: Path) -> None:
    dm = FashionMNISTDataModule(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"apt-get install dataset-fashion-mnist.*LIGHTNING_COMPRESS"):
        dm.prepare_data()
    with pytest.raises(FileNotFoundError, match="download=True"):
        dm.setup("fit")


def test_environment_variable_is_used(tiny_idx_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FASHION_MNIST.env_var, str(tiny_idx_dir))
    dm = FashionMNISTDataModule(val_size=16)
    assert dm.resolve_dir() == tiny_idx_dir
    dm.setup("fit")
    assert dm._train is not None and len(dm._train) == 80


def test_argument_beats_environment(
    tiny_idx_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FASHION_MNIST.env_var, str(tmp_path / "elsewhere"))
    assert FashionMNISTDataModule(tiny_idx_dir).resolve_dir() == tiny_idx_dir


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        FashionMNISTDataModule(batch_size=0)
    with pytest.raises(ValueError, match="val_size"):
        FashionMNISTDataModule(val_size=-1)


def test_val_size_too_large(tiny_idx_dir: Path) -> None:
    with pytest.raises(ValueError, match="val_size"):
        FashionMNISTDataModule(tiny_idx_dir, val_size=96).setup("fit")


@pytest.fixture
def served(tiny_idx_dir: Path) -> Iterator[str]:
    """Serve the tiny IDX set over HTTP on 127.0.0.1."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tiny_idx_dir))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _spec_for(folder: Path) -> IDXDatasetSpec:
    sums = {name: "sha256:" + file_checksum(folder / name) for name in FASHION_MNIST.files.values()}
    return IDXDatasetSpec(
        name="tiny",
        env_var="TINY_DIR_UNSET",
        system_dir="/nonexistent",
        base_url="",
        checksums=sums,
        mean=0.3,
        std=0.3,
    )


def test_download_from_loopback(served: str, tiny_idx_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "downloaded"
    dm = IDXImageDataModule(_spec_for(tiny_idx_dir), dest, val_size=16, download=True, base_url=served)
    dm.prepare_data()
    for name in FASHION_MNIST.files.values():
        assert (dest / name).read_bytes() == (tiny_idx_dir / name).read_bytes()
    dm.setup("fit")
    assert dm._train is not None and len(dm._train) == 80


def test_download_checksum_mismatch_leaves_nothing(served: str, tmp_path: Path) -> None:
    dest = tmp_path / "dl" / "train-labels-idx1-ubyte.gz"
    with pytest.raises(ValueError, match="checksum mismatch"):
        download_file(served + "train-labels-idx1-ubyte.gz", dest, "sha256:" + "0" * 64)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_download_unreachable_names_url(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"could not download http://127.0.0.1:9/x.gz"):
        download_file("http://127.0.0.1:9/x.gz", tmp_path / "x.gz", timeout=5)
    assert not (tmp_path / "x.gz").exists()


def test_download_missing_file_on_server(served: str, tmp_path: Path) -> None:
    with pytest.raises(OSError, match="404"):
        download_file(served + "nope.gz", tmp_path / "nope.gz")
