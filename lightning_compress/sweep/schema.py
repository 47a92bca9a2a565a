"""Structured schema of a sweep file (``sweeps/*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

__all__ = [
    "EarlyStopConfig",
    "LatencyConfig",
    "MethodConfig",
    "ObjectivesConfig",
    "ParamSpec",
    "ParamType",
    "SamplerConfig",
    "SamplerName",
    "SizeObjective",
    "SweepConfig",
    "WandbConfig",
]

# OmegaConf resolves ``Optional[X]`` annotations at runtime: keep ``typing.Optional`` in the schemas.


class ParamType(str, Enum):
    float = "float"
    int = "int"
    categorical = "categorical"


@dataclass
class ParamSpec:
    """One search dimension: a float or int range (optionally log-scaled or stepped), or categorical choices."""

    type: ParamType = ParamType.float
    low: Optional[float] = None  # noqa: UP045
    high: Optional[float] = None  # noqa: UP045
    log: bool = False
    step: Optional[float] = None  # noqa: UP045
    choices: Optional[list[Any]] = None  # noqa: UP045


@dataclass
class MethodConfig:
    """A compression method that competes in the study: its ``compression`` section and its own space.

    ``compression`` is a run config's ``compression`` section; ``search_space`` keys are dotted run-config
    keys (e.g. ``compression.group_sparsity.strength``). A new method needs only a new entry here.
    """

    compression: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    search_space: dict[str, ParamSpec] = field(default_factory=dict)
    # after training, the model taken at these shares of the size objective (a flexible-rank model's
    # curve): each size is added to the study as a completed trial of its own (``size_of``: the trial)
    sizes: list[float] = field(default_factory=list)
    # this method's own trial budget: when every method gives one, the study runs exactly that many
    # trials of each (their sum is the sweep's n_trials), the methods taking turns
    n_trials: Optional[int] = None  # noqa: UP045


class SizeObjective(str, Enum):
    """What the study minimizes beside maximizing accuracy: parameters or MACs after physical removal, or
    the exported model's measured latency (milliseconds a batch, see :class:`LatencyConfig`)."""

    params = "params"
    macs = "macs"
    latency = "latency"


@dataclass
class ObjectivesConfig:
    """Minimize the size (or latency) after physical removal; maximize validation accuracy (test accuracy is
    only reported). All three measures are recorded for every trial whichever is the objective."""

    size: SizeObjective = SizeObjective.params
    accuracy_floor: Optional[float] = None  # noqa: UP045


class SamplerName(str, Enum):
    tpe = "tpe"
    nsga2 = "nsga2"
    random = "random"


@dataclass
class SamplerConfig:
    name: SamplerName = SamplerName.tpe
    seed: int = 0
    n_startup_trials: int = 4
    population_size: int = 8


@dataclass
class EarlyStopConfig:
    """Stop a hopeless trial: validation accuracy below ``min_val_acc`` after epoch ``after_epoch`` (0-based)."""

    after_epoch: int = 1
    min_val_acc: Optional[float] = None  # noqa: UP045


@dataclass
class LatencyConfig:
    """How each trial's exported model (the program ``export`` writes) is timed, on the worker that trained
    it: ``warmup`` untimed runs, then the median of ``runs`` timed forward passes of one batch of
    ``batch_size``, with ``threads`` torch threads. A trial whose architecture was timed before on the same
    host reuses that time."""

    batch_size: int = 256
    threads: int = 1
    warmup: int = 5
    runs: int = 30


@dataclass
class WandbConfig:
    """Weights & Biases logging: one run per trial grouped by study, and a summary run with the Pareto front."""

    enabled: bool = True
    project: str = "lightning-compress"
    entity: Optional[str] = None  # noqa: UP045
    tags: list[str] = field(default_factory=list)
    mode: str = "offline"


@dataclass
class SweepConfig:
    """``lightning-compress sweep SWEEP.yaml``: a multi-objective Optuna study over compression strength."""

    name: str = "sweep"
    base: str = "../configs/lenet300_fmnist.yaml"
    overrides: list[str] = field(default_factory=list)
    methods: dict[str, MethodConfig] = field(default_factory=dict)
    search_space: dict[str, ParamSpec] = field(default_factory=dict)
    objectives: ObjectivesConfig = field(default_factory=ObjectivesConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    n_trials: int = 8
    storage: Optional[str] = None  # noqa: UP045
    output_dir: str = "runs/sweeps"
    early_stop: EarlyStopConfig = field(default_factory=EarlyStopConfig)
    heartbeat_seconds: float = 10.0
    stale_after_seconds: float = 60.0
    wandb: WandbConfig = field(default_factory=WandbConfig)
