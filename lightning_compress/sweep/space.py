"""Turn a sweep's search space into Optuna suggestions and run-config overrides."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import optuna

from lightning_compress.config.load import ConfigError
from lightning_compress.sweep.schema import ParamSpec, ParamType, SweepConfig

__all__ = ["METHOD_PARAM", "suggest_overrides", "validate_space"]

METHOD_PARAM = "method"


def _check_spec(key: str, spec: ParamSpec) -> None:
    if spec.type == ParamType.categorical:
        if not spec.choices:
            raise ConfigError(key, "a categorical parameter needs a non-empty 'choices' list")
        return
    if spec.low is None or spec.high is None:
        raise ConfigError(key, f"a {spec.type.value} parameter needs 'low' and 'high'")
    if not (math.isfinite(spec.low) and math.isfinite(spec.high)):
        raise ConfigError(key, f"low and high must be finite, got low={spec.low}, high={spec.high}")
    if spec.low > spec.high:
        raise ConfigError(key, f"low must be <= high, got low={spec.low} > high={spec.high}")
    if spec.log and spec.low <= 0:
        raise ConfigError(key, f"a log-scaled range needs low > 0, got low={spec.low}")
    if spec.log and spec.step is not None:
        raise ConfigError(key, "a range cannot be both log-scaled and stepped")
    if spec.type == ParamType.int and (spec.low != int(spec.low) or spec.high != int(spec.high)):
        raise ConfigError(key, f"an int parameter needs integer bounds, got low={spec.low}, high={spec.high}")


def validate_space(cfg: SweepConfig) -> None:
    """Raise :class:`ConfigError` for an empty space or a bad dimension, naming its key."""
    if (
        not cfg.search_space
        and not any(m.search_space for m in cfg.methods.values())
        and len(cfg.methods) < 2
    ):
        raise ConfigError("search_space", "the search space is empty: give search_space or methods with one")
    for key, spec in cfg.search_space.items():
        _check_spec(f"search_space.{key}", spec)
    for name, method in cfg.methods.items():
        for key, spec in method.search_space.items():
            _check_spec(f"methods.{name}.search_space.{key}", spec)


def _suggest(trial: optuna.Trial, name: str, spec: ParamSpec) -> Any:
    if spec.type == ParamType.categorical:
        return trial.suggest_categorical(name, list(spec.choices or []))
    assert spec.low is not None and spec.high is not None  # checked by validate_space
    if spec.type == ParamType.int:
        step = int(spec.step) if spec.step else 1
        return trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
    return trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)


def _override(key: str, value: Any) -> str:
    if isinstance(value, str):
        return f"{key}={value}"
    return f"{key}={value!r}"


def suggest_overrides(trial: optuna.Trial, cfg: SweepConfig) -> tuple[str | None, dict[str, Any], list[str]]:
    """Ask ``trial`` for one point of the space.

    Returns:
        ``(method, compression_section, overrides)``: the chosen method (``None`` without methods), its
        ``compression`` section, and the dotted ``key=value`` overrides for the run config. A method's own
        parameters are named ``"<method>/<key>"`` in Optuna, so conditional spaces never collide.
    """
    overrides: list[str] = []
    compression: Mapping[str, Any] = {}
    method: str | None = None
    if cfg.methods:
        names = list(cfg.methods)
        method = names[0] if len(names) == 1 else trial.suggest_categorical(METHOD_PARAM, names)
        chosen = cfg.methods[method]
        compression = chosen.compression
        overrides += list(chosen.overrides)
        for key, spec in chosen.search_space.items():
            overrides.append(_override(key, _suggest(trial, f"{method}/{key}", spec)))
    for key, spec in cfg.search_space.items():
        overrides.append(_override(key, _suggest(trial, key, spec)))
    return method, dict(compression), overrides
