"""Structured (dataclass) schemas of a training run's configuration, validated by OmegaConf."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from lightning_compress.config.methods import CompressionConfig

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
    """Data sets with a built-in data module.

    Example:
        >>> DatasetName('mnist').value
        'mnist'
    """

    fashion_mnist = "fashion_mnist"
    mnist = "mnist"


class ModelName(str, Enum):
    """Example models (``lightning_compress.models``).

    Example:
        >>> [m.value for m in ModelName][:2]
        ['lenet300_100', 'lenet5']
    """

    lenet300_100 = "lenet300_100"
    lenet5 = "lenet5"
    vgg_small = "vgg_small"
    resnet_small = "resnet_small"
    mobilenet_small = "mobilenet_small"
    transformer_small = "transformer_small"


class OptimizerName(str, Enum):
    """Optimizers the example classifier builds.

    Example:
        >>> OptimizerName('adamw') is OptimizerName.adamw
        True
    """

    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"


class SchedulerName(str, Enum):
    """LR schedules the example classifier builds (``step``: ``StepLR(step_size, gamma)``).

    Example:
        >>> SchedulerName('cosine').value
        'cosine'
    """

    none = "none"
    cosine = "cosine"
    step = "step"


@dataclass
class DataConfig:
    """Data module options (see :class:`~lightning_compress.data.IDXImageDataModule`).

    Example:
        >>> DataConfig(batch_size=256).batch_size
        256
    """

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
    """Which example model, and its constructor's keyword arguments.

    Example:
        >>> ModelConfig(ModelName.lenet5).name.value
        'lenet5'
    """

    name: ModelName = ModelName.lenet300_100
    kwargs: dict[str, Any] = field(default_factory=dict)
    # instead of ``name``: any model by its import path (``package.module.Class``), built with ``kwargs``
    class_path: Optional[str] = None  # noqa: UP045


@dataclass
class OptimizerConfig:
    """The optimizer of the example classifier.

    Example:
        >>> OptimizerConfig().lr
        0.1
    """

    name: OptimizerName = OptimizerName.sgd
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False


@dataclass
class SchedulerConfig:
    """The LR schedule of the example classifier.

    Example:
        >>> SchedulerConfig().name.value
        'cosine'
    """

    name: SchedulerName = SchedulerName.cosine
    step_size: int = 10
    gamma: float = 0.1


@dataclass
class TrainerConfig:
    """A subset of ``lightning.pytorch.Trainer`` arguments; ``limit_*`` take an int (batches) or a fraction.

    Example:
        >>> TrainerConfig(max_epochs=3).max_epochs
        3
    """

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


class SizeCost(str, Enum):
    """A size measure a sweep minimizes: parameters or MACs after physical removal.

    Example:
        >>> SizeCost("macs").value
        'macs'
    """

    params = "params"
    macs = "macs"


@dataclass
class RunConfig:
    """One training run: ``lightning-compress train CONFIG [key=value ...]``.

    Example:
        >>> RunConfig().compression.group_sparsity is None  # a dense run
        True
    """

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
