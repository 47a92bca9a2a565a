"""Where the MNIST-format data sets live and how their files are checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["FASHION_MNIST", "MNIST", "IDXDatasetSpec"]

_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


@dataclass(frozen=True)
class IDXDatasetSpec:
    """Where an MNIST-format data set lives and how to check it.

    Args:
        name: Short name, used for the cache folder.
        env_var: Environment variable that may name the folder of IDX files.
        system_dir: Folder where a system package installs the files.
        base_url: Where the official files can be downloaded from.
        checksums: ``"algorithm:hexdigest"`` per file name.
        mean: Pixel mean over the training set (on the 0-1 scale), for normalization.
        std: Pixel standard deviation over the training set.
        install_hint: How to get the files on a machine without network access.

    Example:
        >>> FASHION_MNIST.files["test_labels"], FASHION_MNIST.checksums["t10k-labels-idx1-ubyte.gz"][:7]
        ('t10k-labels-idx1-ubyte.gz', 'sha256:')
    """

    name: str
    env_var: str
    system_dir: str
    base_url: str
    checksums: Mapping[str, str]
    mean: float
    std: float
    install_hint: str = ""
    files: Mapping[str, str] = field(default_factory=lambda: dict(_FILES))


FASHION_MNIST = IDXDatasetSpec(
    name="fashion-mnist",
    env_var="LIGHTNING_COMPRESS_FASHION_MNIST_DIR",
    system_dir="/usr/share/datasets/fashion-mnist",
    base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    checksums={
        "train-images-idx3-ubyte.gz": "sha256:b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        "train-labels-idx1-ubyte.gz": "sha256:0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        "t10k-images-idx3-ubyte.gz": "sha256:cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        "t10k-labels-idx1-ubyte.gz": "sha256:8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    },
    mean=0.2860,
    std=0.3530,
    install_hint="on Debian: 'apt-get install dataset-fashion-mnist'",
)

MNIST = IDXDatasetSpec(
    name="mnist",
    env_var="LIGHTNING_COMPRESS_MNIST_DIR",
    system_dir="/usr/share/datasets/mnist",
    base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    checksums={
        "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
    },
    mean=0.1307,
    std=0.3081,
)
