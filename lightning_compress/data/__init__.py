"""Example data modules (Fashion-MNIST, MNIST) for demos, benchmarks and tests."""

from lightning_compress.data.datamodule import FashionMNISTDataModule, IDXImageDataModule, MNISTDataModule
from lightning_compress.data.download import download_file, file_checksum, verify_checksum
from lightning_compress.data.idx import read_idx, write_idx
from lightning_compress.data.specs import FASHION_MNIST, MNIST, IDXDatasetSpec

__all__ = [
    "FASHION_MNIST",
    "MNIST",
    "FashionMNISTDataModule",
    "IDXDatasetSpec",
    "IDXImageDataModule",
    "MNISTDataModule",
    "download_file",
    "file_checksum",
    "read_idx",
    "verify_checksum",
    "write_idx",
]
