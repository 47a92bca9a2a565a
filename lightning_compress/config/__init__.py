"""Structured configs: schemas, loading with one-line errors, builders, and the table of methods."""

from lightning_compress.config.build import build_datamodule, build_module, trainer_kwargs
from lightning_compress.config.errors import ConfigError
from lightning_compress.config.load import find_config, load_config, to_yaml, validate_config
from lightning_compress.config.methods import (
    METHODS,
    CompressionConfig,
    GroupSparsityConfig,
    LowRankCompressionConfig,
    LowRankConfig,
    Method,
    NeuronReportConfig,
    PruningConfig,
    build_callbacks,
    preflight_callbacks,
)
from lightning_compress.config.schema import (
    DataConfig,
    DatasetName,
    ModelConfig,
    ModelName,
    OptimizerConfig,
    OptimizerName,
    RunConfig,
    SchedulerConfig,
    SchedulerName,
    SizeCost,
    TrainerConfig,
)

__all__ = [
    "METHODS",
    "CompressionConfig",
    "ConfigError",
    "DataConfig",
    "DatasetName",
    "GroupSparsityConfig",
    "LowRankCompressionConfig",
    "LowRankConfig",
    "Method",
    "ModelConfig",
    "ModelName",
    "NeuronReportConfig",
    "OptimizerConfig",
    "OptimizerName",
    "PruningConfig",
    "RunConfig",
    "SchedulerConfig",
    "SchedulerName",
    "SizeCost",
    "TrainerConfig",
    "build_callbacks",
    "build_datamodule",
    "build_module",
    "find_config",
    "load_config",
    "preflight_callbacks",
    "to_yaml",
    "trainer_kwargs",
    "validate_config",
]
