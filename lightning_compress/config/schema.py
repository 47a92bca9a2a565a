"""Structured (dataclass) schemas of a training run's configuration, validated by OmegaConf."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from lightning_compress.config.methods import CompressionConfig
from lightning_compress.regularizers import Cost

__all__ = [
    "DataConfig",
    "DatasetName",
    "ModelConfig",
    "ModelName",
    "OptimizerConfig",
    "OptimizerName",
    "RunConfig",
    "SchedulerConfig",
    "SchedulerName",
    "SizeCost",
    "TrainerConfig",
]

# OmegaConf resolves ``Optional[X]`` annotations at runtime: keep ``typing.Optional`` in the schemas.


class DatasetName(str, Enum):
    """Data sets with a built-in data module."""

    fashion_mnist = "fashion_mnist"
    mnist = "mnist"


class ModelName(str, Enum):
    """Example models."""

    lenet300_100 = "lenet300_100"
    lenet5 = "lenet5"
    vgg_small = "vgg_small"
    resnet_small = "resnet_small"


class OptimizerName(str, Enum):
    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"


class SchedulerName(str, Enum):
    none = "none"
    cosine = "cosine"
    step = "step"


@dataclass
class DataConfig:
    """Data module options (see :class:`~lightning_compress.data.IDXImageDataModule`)."""

    name: DatasetName = DatasetName.fashion_mnist
    data_dir: Optional[str] = None  # noqa: UP045
    batch_size: int = 128
    val_size: int = 5000
    split_seed: int = 0
    num_workers: int = 0
    download: bool = False
    normalize: str = "global"


@dataclass
class ModelConfig:
    """Which example model, and its constructor's keyword arguments."""

    name: ModelName = ModelName.lenet300_100
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerConfig:
    name: OptimizerName = OptimizerName.sgd
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False


@dataclass
class SchedulerConfig:
    name: SchedulerName = SchedulerName.cosine
    step_size: int = 10
    gamma: float = 0.1


@dataclass
class TrainerConfig:
    """A subset of ``lightning.pytorch.Trainer`` arguments; ``limit_*`` take an int (batches) or a fraction."""

    max_epochs: int = 10
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    accumulate_grad_batches: int = 1
    gradient_clip_val: Optional[float] = None  # noqa: UP045
    deterministic: bool = False
    enable_progress_bar: bool = True
    log_every_n_steps: int = 50


SizeCost = Cost
"""A size measure: what group weights stand for, and what a sweep minimizes (``params`` or ``macs``)."""


@dataclass
class RunConfig:
    """One training run: ``lightning-compress train CONFIG [key=value ...]``."""

    name: str = "run"
    seed: int = 0
    output_dir: str = "runs"
    resume_from: Optional[str] = None  # noqa: UP045
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    compression: Any = field(default_factory=CompressionConfig)  # made from the method table
