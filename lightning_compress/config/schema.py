"""Structured (dataclass) schemas of a training run's configuration, validated by OmegaConf."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

__all__ = [
    "CompressionConfig",
    "DataConfig",
    "DatasetName",
    "GroupMode",
    "GroupSparsityConfig",
    "ModelConfig",
    "ModelName",
    "NeuronReportConfig",
    "OptimizerConfig",
    "OptimizerName",
    "ProxSchedule",
    "PruningConfig",
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


class GroupMode(str, Enum):
    """Which parameters form a neuron's group."""

    incoming = "incoming"
    coupled = "coupled"
    bn = "bn"


class SizeCost(str, Enum):
    """A size measure: what group weights stand for, and what a sweep minimizes."""

    params = "params"
    macs = "macs"


class ProxSchedule(str, Enum):
    step = "step"
    epoch = "epoch"
    subgradient = "subgradient"


@dataclass
class GroupSparsityConfig:
    """:class:`~lightning_compress.callbacks.GroupSparsity` arguments (layer names are the LightningModule's,
    e.g. ``model.1``)."""

    strength: float = 1e-3
    l1_ratio: float = 0.0
    layer_strengths: dict[str, float] = field(default_factory=dict)
    groups: GroupMode = GroupMode.incoming
    include: Optional[list[str]] = None  # noqa: UP045
    exclude: list[str] = field(default_factory=list)
    schedule: ProxSchedule = ProxSchedule.step
    every_n_steps: int = 1
    warmup_epochs: int = 0
    ramp_epochs: int = 0
    stop_epoch: Optional[int] = None  # noqa: UP045
    input_layers: list[str] = field(default_factory=list)
    input_strength: Optional[float] = None  # noqa: UP045
    cost: SizeCost = SizeCost.params
    cost_exponent: float = 1.0
    keep_ratio: float = 0.0
    log_effective_size: bool = True


@dataclass
class PruningConfig:
    """:class:`~lightning_compress.callbacks.StructuredPruning` arguments."""

    epochs: list[int] = field(default_factory=list)
    every_n_epochs: Optional[int] = None  # noqa: UP045
    at_fit_end: bool = True
    threshold: float = 0.0
    relative_threshold: float = 0.0
    min_width: int = 1
    groups: Optional[GroupMode] = None  # noqa: UP045  (None: GroupSparsity's groups)
    include: Optional[list[str]] = None  # noqa: UP045
    exclude: list[str] = field(default_factory=list)
    fold_constants: bool = True
    input_layers: list[str] = field(default_factory=list)


@dataclass
class NeuronReportConfig:
    """:class:`~lightning_compress.callbacks.NeuronReport` arguments."""

    relative_threshold: float = 1e-3
    every_n_epochs: int = 1


@dataclass
class CompressionConfig:
    """Compression methods applied during training; each method is one optional sub-section.

    An empty section trains the dense model. ``group_sparsity`` zeroes neurons, ``pruning`` removes
    (near-)zero ones physically, ``neuron_report`` logs how many are near zero.
    """

    group_sparsity: Optional[GroupSparsityConfig] = None  # noqa: UP045
    pruning: Optional[PruningConfig] = None  # noqa: UP045
    neuron_report: Optional[NeuronReportConfig] = None  # noqa: UP045


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
    compression: CompressionConfig = field(default_factory=CompressionConfig)
