"""Structured configs: schemas, loading with one-line errors, and builders."""

from lightning_compress.config.load import ConfigError, load_config, to_yaml, validate_config
from lightning_compress.config.schema import (
    CompressionConfig,
    DataConfig,
    DatasetName,
    ModelConfig,
    ModelName,
    OptimizerConfig,
    OptimizerName,
    RunConfig,
    SchedulerConfig,
    SchedulerName,
    TrainerConfig,
)

__all__ = [
    "CompressionConfig",
    "ConfigError",
    "DataConfig",
    "DatasetName",
    "ModelConfig",
    "ModelName",
    "OptimizerConfig",
    "OptimizerName",
    "RunConfig",
    "SchedulerConfig",
    "SchedulerName",
    "TrainerConfig",
    "load_config",
    "to_yaml",
    "validate_config",
]
