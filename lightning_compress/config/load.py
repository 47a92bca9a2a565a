"""Load a run configuration from YAML plus ``key=value`` overrides, and check it before any training."""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lightning_compress.config.errors import ConfigError
from lightning_compress.config.methods import build_callbacks
from lightning_compress.config.schema import RunConfig

__all__ = ["ConfigError", "load_config", "to_yaml", "validate_config"]


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _merge(schema: Any, *sources: Any, key: str | None = None) -> Any:
    try:
        return OmegaConf.merge(schema, *sources)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or key or "config"
        raise ConfigError(str(key), _first_line(err)) from None
    except TypeError as err:  # a list where a mapping belongs, or the other way round
        shape = _shape(schema, key) if key else None
        wanted = f"must be {shape}" if shape else "has the wrong shape"
        raise ConfigError(key or "config", f"{wanted} ({_first_line(err)})") from None


def _shape(cfg: Any, key: str) -> str | None:
    """``"a mapping"`` or ``"a list"``: what the schema declares at ``key`` (``None`` if neither)."""
    parent, _, last = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
    owner = OmegaConf.get_type(node) if node is not None else None
    kind: Any = typing.get_type_hints(owner).get(last) if dataclasses.is_dataclass(owner) else None
    while typing.get_origin(kind) in (typing.Union, types.UnionType):  # Optional[X] -> X
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    origin = typing.get_origin(kind) or kind
    if isinstance(origin, type) and issubclass(origin, (dict, Mapping)):
        return "a mapping"
    if isinstance(origin, type) and issubclass(origin, (list, tuple, Sequence)) and origin is not str:
        return "a list"
    return None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (line {line})"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


SHIPPED = Path(__file__).resolve().parent.parent
"""The installed package's folder: its ``configs/`` and ``sweeps/`` hold the example files."""


def find_config(path: str | os.PathLike[str], folders: Sequence[str] = ("configs", "sweeps")) -> Path:
    """``path`` if it is a file, else the shipped example of that name (``configs/lenet300_fmnist.yaml``,
    ``lenet300_fmnist.yaml`` or ``lenet300_fmnist``, from the package's ``folders``).

    Example:
        >>> find_config("lenet5_fmnist").relative_to(SHIPPED).as_posix()
        'configs/lenet5_fmnist.yaml'
    """
    if os.path.isfile(path):
        return Path(path)
    if os.path.isdir(path):
        raise ConfigError(
            "config", f"{os.fspath(path)!r} is a folder, not a config file: give the YAML file in it"
        )
    name, parent = Path(path).name, Path(path).parent.name
    order = [parent, *folders] if parent in ("configs", "sweeps") else list(folders)
    for folder in order if str(path).count("/") <= 1 else ():
        for candidate in (name, f"{name}.yaml"):
            if (SHIPPED / folder / candidate).is_file():
                return SHIPPED / folder / candidate
    examples = sorted(p.stem for p in (SHIPPED / "configs").glob("*.yaml"))
    raise ConfigError(
        "config",
        f"file not found: {os.fspath(path)!r} (shipped examples: {', '.join(examples)}; sweeps: "
        f"{', '.join(sorted(p.stem for p in (SHIPPED / 'sweeps').glob('*.yaml')))})",
    )


def _read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = find_config(path)
    name = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.load(fh, Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as err:
        raise ConfigError(name, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ConfigError(name, f"not valid YAML: {_first_line(err)}") from None
    except OSError as err:
        raise ConfigError(name, f"cannot read: {err.strerror or err}") from None
    if raw is None:
        raise ConfigError(name, "the file is empty: give at least one section (see configs/ for examples)")
    if not isinstance(raw, dict):
        raise ConfigError(name, f"must hold a mapping of keys, got {type(raw).__name__}")
    return raw


def _override(item: str) -> Any:
    key, eq, value = item.partition("=")
    if not eq or not key.strip():
        raise ConfigError(item, "an override must look like key=value")
    try:
        yaml.safe_load(value)
        return OmegaConf.from_dotlist([item])
    except (yaml.YAMLError, OmegaConfBaseException) as err:
        raise ConfigError(
            key, f"the value {value!r} of override {item!r} is not valid YAML: {_first_line(err)}"
        ) from None


def load_config(
    path: str | os.PathLike[str] | None,
    overrides: Sequence[str] = (),
    schema: type = RunConfig,
    *,
    extra: Sequence[Mapping[str, Any]] = (),
) -> Any:
    """Read a YAML file onto a structured schema, apply overrides, and validate.

    Args:
        path: A YAML file (``None`` starts from the schema's defaults).
        overrides: ``key=value`` strings in OmegaConf's dot-list syntax.
        schema: The dataclass the file must fit.
        extra: Mappings merged after the file and before the overrides.

    Returns:
        An instance of ``schema`` (plain dataclasses, enums resolved).

    Raises:
        ConfigError: Naming the key and the problem, for a missing file, bad YAML, an unknown key, a
            value of the wrong type, or a value out of range.

    Example:
        >>> cfg = load_config(None, ["optimizer.lr=0.05", "model.name=lenet5"])
        >>> cfg.optimizer.lr, cfg.model.name.value
        (0.05, 'lenet5')
        >>> load_config(None, ["optimizer.learning_rate=0.05"])
        Traceback (most recent call last):
        ...
        lightning_compress.config.errors.ConfigError: optimizer.learning_rate: Key 'learning_rate' not in 'OptimizerConfig'
    """
    sources: list[Any] = [] if path is None else [_read_yaml(path)]
    sources.extend(dict(m) for m in extra)
    merged = _merge(OmegaConf.structured(schema), *sources)
    for item in overrides:  # one at a time: an error names the override's key
        merged = _merge(merged, _override(item), key=item.partition("=")[0].strip())
    try:
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "config"
        raise ConfigError(str(key), _first_line(err)) from None
    validate_config(cfg)
    return cfg


def to_yaml(cfg: Any) -> str:
    """The YAML text of a config dataclass (as written into run folders).

    Example:
        >>> print(to_yaml(RunConfig()).splitlines()[0])
        name: run
    """
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def _check(condition: bool, key: str, problem: str) -> None:
    if not condition:
        raise ConfigError(key, problem)


def _check_limit(value: Any, key: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"must be an int (batches) or a float in [0, 1], got {value!r}")
    if isinstance(value, float):
        _check(0.0 <= value <= 1.0, key, f"a fraction must be in [0, 1], got {value}")
    else:
        _check(value >= 0, key, f"must be >= 0, got {value}")


def validate_config(cfg: Any) -> None:
    """Range checks a type check cannot do; raises :class:`ConfigError` naming the key.

    Only sections the config has are checked, so it serves any schema built from these sections.

    Example:
        >>> from lightning_compress.config.schema import RunConfig
        >>> cfg = RunConfig(); cfg.optimizer.lr = -1.0
        >>> validate_config(cfg)
        Traceback (most recent call last):
        ...
        lightning_compress.config.errors.ConfigError: optimizer.lr: must be a positive finite number, got -1.0
    """
    if hasattr(cfg, "data"):
        d = cfg.data
        _check(d.batch_size > 0, "data.batch_size", f"must be > 0, got {d.batch_size}")
        _check(d.val_size >= 0, "data.val_size", f"must be >= 0, got {d.val_size}")
        _check(d.num_workers >= 0, "data.num_workers", f"must be >= 0, got {d.num_workers}")
        _check(
            d.normalize in ("global", "per_pixel"),
            "data.normalize",
            f"must be global or per_pixel, got {d.normalize!r}",
        )
        if d.data_dir is not None and not d.download:
            _check(os.path.isdir(d.data_dir), "data.data_dir", f"folder does not exist: {d.data_dir!r}")
    if hasattr(cfg, "optimizer"):
        o = cfg.optimizer
        _check(
            math.isfinite(o.lr) and o.lr > 0, "optimizer.lr", f"must be a positive finite number, got {o.lr}"
        )
        _check(0 <= o.momentum < 1, "optimizer.momentum", f"must be in [0, 1), got {o.momentum}")
        _check(o.weight_decay >= 0, "optimizer.weight_decay", f"must be >= 0, got {o.weight_decay}")
    if hasattr(cfg, "scheduler"):
        s = cfg.scheduler
        _check(s.step_size > 0, "scheduler.step_size", f"must be > 0, got {s.step_size}")
        _check(0 < s.gamma <= 1, "scheduler.gamma", f"must be in (0, 1], got {s.gamma}")
    if hasattr(cfg, "trainer"):
        t = cfg.trainer
        _check(t.max_epochs > 0, "trainer.max_epochs", f"must be > 0, got {t.max_epochs}")
        _check(t.accumulate_grad_batches >= 1, "trainer.accumulate_grad_batches", "must be >= 1")
        for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
            _check_limit(getattr(t, name), f"trainer.{name}")
    if hasattr(cfg, "model"):
        from lightning_compress.models.registry import build_model

        try:
            build_model(cfg.model.class_path or cfg.model.name.value, **dict(cfg.model.kwargs))
        except ValueError as err:
            key = (
                "model.class_path"
                if "cannot import" in str(err) or "not a torch" in str(err)
                else "model.kwargs"
            )
            raise ConfigError(key, str(err)) from None
    if hasattr(cfg, "compression"):
        build_callbacks(cfg.compression)  # the callbacks check their arguments: a ConfigError names the key
    if getattr(cfg, "resume_from", None) is not None:
        _check(os.path.isfile(cfg.resume_from), "resume_from", f"checkpoint not found: {cfg.resume_from!r}")
