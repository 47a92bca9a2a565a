"""LightningDataModules for MNIST-format data sets (Fashion-MNIST, MNIST) read from standard IDX files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Sampler, SequentialSampler

from lightning_compress.data.batches import EpochShuffle, _BatchTensorDataset
from lightning_compress.data.download import download_file, verify_checksum
from lightning_compress.data.idx import read_idx
from lightning_compress.data.specs import FASHION_MNIST, MNIST, IDXDatasetSpec

NORMALIZATIONS = ("global", "per_pixel")

__all__ = ["EpochShuffle", "FashionMNISTDataModule", "IDXImageDataModule", "MNISTDataModule"]


def _cache_dir(spec: IDXDatasetSpec) -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "lightning_compress" / spec.name


def _complete(folder: Path, spec: IDXDatasetSpec) -> bool:
    return all((folder / name).is_file() for name in spec.files.values())


_READ: dict[tuple[str, int, int], torch.Tensor] = {}


def _read_cached(path: Path) -> torch.Tensor:
    """``read_idx``, once per process for an unchanged file: a sweep worker's trials share the read.

    Callers must not modify the returned tensor in place.
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _READ:
        for old in [k for k in _READ if k[0] == key[0]]:  # the file changed: drop the stale copy
            del _READ[old]
        _READ[key] = read_idx(path)
    return _READ[key]


_SPLITS: dict[tuple[Any, ...], tuple[torch.Tensor, ...]] = {}


def _cached_split(key: tuple[Any, ...], make: Any) -> tuple[torch.Tensor, ...]:
    """``make()``'s normalized tensors, once per process for the same files and settings (a sweep worker's
    trials share them; at most two sets are kept). Callers must not modify them in place."""
    if key not in _SPLITS:
        while len(_SPLITS) >= 2:
            del _SPLITS[next(iter(_SPLITS))]
        _SPLITS[key] = make()
    return _SPLITS[key]


def _as_batch(batch: Any) -> Any:
    """Collate function for batches already fetched whole by ``__getitems__``."""
    return batch


class IDXImageDataModule(pl.LightningDataModule):
    """Train/validation/test loaders over an MNIST-format data set held in memory.

    The folder is, in order: ``data_dir``; the spec's environment variable; the system folder a package
    installs; a user cache (``$XDG_CACHE_HOME/lightning_compress/<name>``). With ``download=True`` missing
    files are fetched into the chosen folder and checked against the spec's checksums.

    Args:
        spec: Which data set.
        data_dir: Folder of the four IDX ``.gz`` files.
        batch_size: Batch size of all loaders.
        val_size: Number of training images held out for validation (a seeded, fixed split).
        split_seed: Seed of the train/validation split.
        num_workers: DataLoader workers (0 is fastest for in-memory tensors).
        download: Fetch missing files.
        base_url: Override the spec's download location (e.g. a local mirror).
        normalize: ``"global"`` subtracts the data set's pixel mean and divides by its std;
            ``"per_pixel"`` subtracts each pixel's mean over the training images (then divides by the
            global std), so a pixel that never changes is exactly 0 and input-feature groups can drop it.

    Example:
        >>> IDXImageDataModule(FASHION_MNIST, batch_size=64, val_size=1000).batch_size
        64
    """

    def __init__(
        self,
        spec: IDXDatasetSpec,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 128,
        val_size: int = 5000,
        split_seed: int = 0,
        num_workers: int = 0,
        download: bool = False,
        base_url: str | None = None,
        normalize: str = "global",
    ) -> None:
        super().__init__()
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize=!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size=}")
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0, got {val_size=}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers=}")
        self.spec = spec
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.num_workers = num_workers
        self.download = download
        self.base_url = base_url or spec.base_url
        self.normalize = normalize
        self._pixel_mean: torch.Tensor | None = None
        self.num_classes = 10
        self.input_shape = (1, 28, 28)
        self._train: _BatchTensorDataset | None = None
        self._val: _BatchTensorDataset | None = None
        self._test: _BatchTensorDataset | None = None
        self.train_indices: torch.Tensor | None = None
        self.val_indices: torch.Tensor | None = None

    def resolve_dir(self) -> Path:
        """The folder the files are read from (or downloaded to), by the documented order."""
        if self.data_dir is not None:
            return Path(self.data_dir)
        env = os.environ.get(self.spec.env_var)
        if env:
            return Path(env)
        system = Path(self.spec.system_dir)
        if _complete(system, self.spec):
            return system
        return _cache_dir(self.spec)

    def _missing_error(self, folder: Path) -> FileNotFoundError:
        missing = [name for name in self.spec.files.values() if not (folder / name).is_file()]
        hints = [h for h in (self.spec.install_hint,) if h]
        hints += [
            f"set {self.spec.env_var} to a folder holding them",
            "pass download=True (data.download=true)",
        ]
        return FileNotFoundError(
            f"{self.spec.name} files not found in {str(folder)!r} (missing: {', '.join(missing)}); "
            f"to get them: {'; or '.join(hints)}"
        )

    def prepare_data(self) -> None:
        """Download missing files when ``download=True`` (runs once per node)."""
        folder = self.resolve_dir()
        if _complete(folder, self.spec):
            return
        if not self.download:
            raise self._missing_error(folder)
        for name in self.spec.files.values():
            path = folder / name
            if path.is_file() and verify_checksum(path, self.spec.checksums[name]):
                continue
            download_file(self.base_url.rstrip("/") + "/" + name, path, self.spec.checksums.get(name))

    def _load(self, key: str) -> torch.Tensor:
        folder = self.resolve_dir()
        if not _complete(folder, self.spec):
            raise self._missing_error(folder)
        return _read_cached(folder / self.spec.files[key])

    def _images(self, key: str) -> torch.Tensor:
        raw = self._load(key)
        if raw.ndim != 3:
            raise ValueError(f"{self.spec.files[key]!r} holds shape {tuple(raw.shape)}, expected N x H x W")
        images = raw.to(torch.float32, copy=True).div_(255.0)
        if self.normalize == "per_pixel":
            if self._pixel_mean is None:  # from the training images only
                self._pixel_mean = self._load("train_images").float().div_(255.0).mean(0)
            return images.sub_(self._pixel_mean).div_(self.spec.std).unsqueeze(1)
        return images.sub_(self.spec.mean).div_(self.spec.std).unsqueeze(1)

    def normalization(self) -> tuple[float | torch.Tensor, float | torch.Tensor]:
        """``(mean, std)`` the images are normalized with, on the 0-1 pixel scale (for an exported model)."""
        if self.normalize == "per_pixel":
            if self._pixel_mean is None:
                self._pixel_mean = self._load("train_images").float().div_(255.0).mean(0)
            return self._pixel_mean.unsqueeze(0), self.spec.std
        return self.spec.mean, self.spec.std

    def _labels(self, key: str, count: int) -> torch.Tensor:
        labels = self._load(key).long()
        if labels.shape != (count,):
            raise ValueError(
                f"{self.spec.files[key]!r} holds {tuple(labels.shape)} labels for {count} images"
            )
        return labels

    def setup(self, stage: str | None = None) -> None:
        """Read the IDX files into memory and split train/validation with a fixed seed.

        The normalized tensors are kept for the process: a second data module with the same files and
        settings (the next trial of a sweep worker) reuses them."""
        if stage in (None, "fit", "validate") and self._train is None:
            key = self._key("train_images", "train_labels", self.val_size, self.split_seed)
            images, labels, train_idx, val_idx = _cached_split(key, self._train_val_split)
            self.train_indices, self.val_indices = train_idx, val_idx
            self._train = _BatchTensorDataset(images[train_idx], labels[train_idx])
            self._val = _BatchTensorDataset(images[val_idx], labels[val_idx])
        if stage in (None, "test", "predict") and self._test is None:
            key = self._key("test_images", "test_labels")
            images, labels = _cached_split(key, lambda: self._pair("test_images", "test_labels"))
            self._test = _BatchTensorDataset(images, labels)

    def _key(self, *parts: Any) -> tuple[Any, ...]:
        folder = self.resolve_dir()
        files = []
        for part in parts:
            path = folder / self.spec.files[part] if part in self.spec.files else None
            stat = path.stat() if path is not None and path.is_file() else None
            files.append((str(path), stat.st_size, stat.st_mtime_ns) if stat else part)
        return (self.spec.name, self.normalize, *files)

    def _pair(self, images_key: str, labels_key: str) -> tuple[torch.Tensor, torch.Tensor]:
        images = self._images(images_key)
        return images, self._labels(labels_key, len(images))

    def _train_val_split(self) -> tuple[torch.Tensor, ...]:
        images, labels = self._pair("train_images", "train_labels")
        if self.val_size >= len(images):
            raise ValueError(f"val_size={self.val_size} leaves no training images (of {len(images)})")
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.split_seed))
        return images, labels, order[: len(images) - self.val_size], order[len(images) - self.val_size :]

    def _loader(self, dataset: _BatchTensorDataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call setup() before asking for a loader")
        sampler: Sampler[int] = EpochShuffle(len(dataset)) if shuffle else SequentialSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=_as_batch,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._val, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._test, shuffle=False)


class FashionMNISTDataModule(IDXImageDataModule):
    """Fashion-MNIST (Xiao et al. 2017) from its standard IDX files.

    Example:
        >>> dm = FashionMNISTDataModule(batch_size=256)
        >>> dm.setup("fit")
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> tuple(x.shape), y.dtype
        ((256, 1, 28, 28), torch.int64)
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, **kwargs: object) -> None:
        super().__init__(FASHION_MNIST, data_dir, **kwargs)  # type: ignore[arg-type]


class MNISTDataModule(IDXImageDataModule):
    """MNIST (LeCun et al. 1998) from its standard IDX files; same options as :class:`IDXImageDataModule`.

    Example:
        >>> MNISTDataModule(batch_size=32).batch_size
        32
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, **kwargs: object) -> None:
        super().__init__(MNIST, data_dir, **kwargs)  # type: ignore[arg-type]
