"""Load and check a sweep file; build its sampler."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import optuna

from lightning_compress.config.load import ConfigError, find_config, load_config
from lightning_compress.config.schema import RunConfig
from lightning_compress.sweep.schema import SamplerName, SweepConfig
from lightning_compress.sweep.space import validate_space

__all__ = ["load_sweep", "make_sampler", "method_turns", "sweep_paths"]


def sweep_paths(cfg: SweepConfig, sweep_file: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(base run config, sweep output folder)``; ``base`` is relative to the sweep file."""
    base = Path(cfg.base)
    if not base.is_absolute():
        base = find_config(sweep_file, ("sweeps",)).resolve().parent / base
    return base, Path(cfg.output_dir) / cfg.name


def load_sweep(path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()) -> SweepConfig:
    """Read and fully check a sweep file (space, methods against the run schema, base config, budget).

    ``overrides`` whose first key is a sweep key (``n_trials=4``, ``sampler.name=nsga2``) change the sweep;
    the others (``trainer.max_epochs=1``) are added to the run-config overrides of every trial.

    Raises:
        ConfigError: naming the key and the problem.

    Example:
        >>> cfg = load_sweep("sweeps/lenet300_fmnist.yaml", ["n_trials=2", "trainer.max_epochs=1"])
        >>> cfg.n_trials, cfg.overrides[-1], sorted(cfg.methods)
        (2, 'trainer.max_epochs=1', ['group_lasso', 'sparse_group_lasso'])
    """
    sweep_keys = {f.name for f in fields(SweepConfig)}
    own = [o for o in overrides if o.split("=", 1)[0].split(".", 1)[0] in sweep_keys]
    run = [o for o in overrides if o not in own]  # run-config keys: applied to every trial
    cfg: SweepConfig = load_config(find_config(path, ("sweeps",)), own, schema=SweepConfig)
    cfg.overrides = [*cfg.overrides, *run]
    budgets = {n: m.n_trials for n, m in cfg.methods.items()}
    if any(b is not None for b in budgets.values()):
        missing = [n for n, b in budgets.items() if b is None]
        if missing:
            raise ConfigError(f"methods.{missing[0]}.n_trials", "give every method a budget, or none")
        if any(b < 1 for b in budgets.values() if b is not None):
            raise ConfigError("methods.n_trials", f"every method's budget must be >= 1, got {budgets}")
        cfg.n_trials = sum(b for b in budgets.values() if b is not None)
    if cfg.n_trials < 1:
        raise ConfigError("n_trials", f"must be >= 1, got {cfg.n_trials}")
    floor = cfg.objectives.accuracy_floor
    if floor is not None and not 0 <= floor <= 1:
        raise ConfigError("objectives.accuracy_floor", f"must be in [0, 1], got {floor}")
    if cfg.heartbeat_seconds <= 0 or cfg.stale_after_seconds <= cfg.heartbeat_seconds:
        raise ConfigError("stale_after_seconds", "must be larger than heartbeat_seconds, which must be > 0")
    for key in ("batch_size", "threads", "runs", "warmup"):
        if getattr(cfg.latency, key) < (0 if key == "warmup" else 1):
            raise ConfigError(
                f"latency.{key}", f"must be >= {0 if key == 'warmup' else 1}, got {getattr(cfg.latency, key)}"
            )
    base, _ = sweep_paths(cfg, path)
    if not base.is_file():
        raise ConfigError("base", f"run config not found: {str(base)!r}")
    load_config(base, list(cfg.overrides))  # the base must be valid on its own
    for name, method in cfg.methods.items():
        try:
            load_config(
                base, [*cfg.overrides, *method.overrides], extra=[{"compression": dict(method.compression)}]
            )
        except ConfigError as err:
            key = err.key if err.key.startswith("compression") else f"overrides.{err.key}"
            raise ConfigError(f"methods.{name}.{key}", err.problem) from None
    validate_space(cfg)
    _check_space_keys(cfg, base)
    return cfg


def _check_space_keys(cfg: SweepConfig, base: Path) -> None:
    """Every searched key must exist in the run config (a typo would otherwise be searched for nothing)."""
    from omegaconf import OmegaConf

    schema = OmegaConf.structured(RunConfig)
    spaces: list[tuple[str, dict[str, Any]]] = [("search_space", dict(cfg.search_space))]
    spaces += [(f"methods.{n}.search_space", dict(m.search_space)) for n, m in cfg.methods.items()]
    for prefix, space in spaces:
        for key in space:
            section, _, _ = key.partition(".")
            if section == "compression":
                continue  # checked with the method's section by load_config
            if OmegaConf.select(schema, key, default="__missing__") == "__missing__":
                raise ConfigError(f"{prefix}.{key}", f"{key!r} is not a run-config key")


def make_sampler(
    cfg: SweepConfig, worker_index: int = 0, trials_so_far: int = 0
) -> optuna.samplers.BaseSampler:
    """The configured multi-objective sampler, seeded for this worker and for the study's progress.

    The seed is ``seed + worker_index + 1009 * trials_so_far``: workers differ from each other, and a
    worker that resumes or joins a study with trials in it does not replay the points drawn by the
    worker that started it. The accuracy floor reaches the samplers as a trial constraint
    (``Trial.set_constraint``).

    Example:
        >>> from lightning_compress.sweep.schema import SweepConfig
        >>> type(make_sampler(SweepConfig(), worker_index=1, trials_so_far=4)).__name__
        'TPESampler'
    """
    seed = cfg.sampler.seed + worker_index + 1009 * trials_so_far
    if cfg.sampler.name == SamplerName.tpe:
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.sampler.n_startup_trials)
    if cfg.sampler.name == SamplerName.nsga2:
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=cfg.sampler.population_size)
    return optuna.samplers.RandomSampler(seed=seed)


def method_turns(cfg: SweepConfig) -> list[str]:
    """The methods in the order their trials are queued when each has its own budget (``[]`` otherwise):
    round-robin, so that every method is in the study early and workers train different methods.

    Example:
        >>> from lightning_compress.sweep.schema import MethodConfig
        >>> cfg = SweepConfig(methods={"a": MethodConfig(n_trials=2), "b": MethodConfig(n_trials=1)})
        >>> method_turns(cfg)
        ['a', 'b', 'a']
    """
    budgets = {n: m.n_trials or 0 for n, m in cfg.methods.items()}
    if not any(budgets.values()):
        return []
    return [n for r in range(max(budgets.values())) for n, b in budgets.items() if r < b]
