"""Config sections and command-line flags derived from a callback's signature and docstring.

A callback's ``__init__`` is the one declaration of its options (what a Lightning user reads): the
section's structured-config schema and, for ``compress``, the command-line flags and their help are
made from it, the way LightningCLI derives its arguments. A new argument of a callback is therefore
a new config key and flag with no other edit.
"""

from __future__ import annotations

import argparse
import collections.abc
import functools
import inspect
import re
import types
import typing
from dataclasses import MISSING, field, make_dataclass
from enum import Enum
from typing import Any, Optional, Union

__all__ = ["add_flags", "argument_help", "config_type", "section_schema", "signature_options"]

_SKIPPED = ("self", "example_input")  # a traced tensor is not a config value


def signature_options(target: Any, skip: tuple[str, ...] = ()) -> dict[str, inspect.Parameter]:
    """The keyword options of a callable (a class: its ``__init__``), by name, with resolved annotations.

    Example:
        >>> from lightning_compress.callbacks import NeuronReport
        >>> list(signature_options(NeuronReport))
        ['relative_threshold', 'every_n_epochs', 'input_key']
    """
    function = target.__init__ if inspect.isclass(target) else target
    hints = typing.get_type_hints(function)
    return {
        name: p.replace(annotation=hints.get(name, Any))
        for name, p in inspect.signature(function).parameters.items()
        if name not in (*_SKIPPED, *skip) and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _union_args(hint: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(hint) in (Union, types.UnionType):
        return typing.get_args(hint)
    return None


def config_type(hint: Any) -> tuple[Any, bool]:
    """The OmegaConf-compatible type of an annotation, and whether ``None`` is allowed.

    Closed choices become their ``Enum`` (a ``Literal`` alone: ``str``), layer selectors and other
    sequences ``list``, mappings ``dict``; a callable alternative is dropped (a config holds data).

    Example:
        >>> from collections.abc import Sequence
        >>> config_type(Sequence[int] | None)
        (list[int], True)
    """
    if (args := _union_args(hint)) is not None:
        optional = type(None) in args
        rest = [
            a for a in args if a is not type(None) and typing.get_origin(a) is not collections.abc.Callable
        ]
        enum = next((a for a in rest if inspect.isclass(a) and issubclass(a, Enum)), None)
        if enum is not None:
            return enum, optional
        if str in rest or any(typing.get_origin(a) is typing.Literal for a in rest):
            return str, optional  # a layer selector (name or module type), or a choice of strings
        inner, inner_optional = config_type(rest[0])
        return inner, optional or inner_optional
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return str, False
    if origin in (collections.abc.Sequence, list, tuple, collections.abc.Collection):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return list[config_type(item)[0]], False  # type: ignore[misc]
    if origin in (collections.abc.Mapping, dict):
        key, value = typing.get_args(hint)
        return dict[key, config_type(value)[0]], False  # type: ignore[misc,valid-type]
    if hint in (int, float, bool, str) or (inspect.isclass(hint) and issubclass(hint, Enum)):
        return hint, False
    return Any, True


def _default(parameter: inspect.Parameter) -> Any:
    value = parameter.default
    if value is inspect.Parameter.empty:
        return MISSING
    if isinstance(value, (tuple, list, dict)):
        return field(
            default_factory=functools.partial(type(value) if isinstance(value, dict) else list, value)
        )
    return field(default=value)


def section_schema(
    target: Any, name: str | None = None, *, skip: tuple[str, ...] = (), module: str | None = None
) -> type:
    """A structured-config dataclass whose fields are the options of ``target``'s signature.

    Field names, types and defaults are the signature's; the docstring points to the callback.

    Example:
        >>> from lightning_compress.callbacks import NeuronReport
        >>> schema = section_schema(NeuronReport)
        >>> schema.__name__, schema().relative_threshold
        ('NeuronReportConfig', 0.001)
    """
    fields = []
    for option, parameter in signature_options(target, skip).items():
        kind, optional = config_type(parameter.annotation)
        annotation = Optional[kind] if optional and kind is not Any else kind  # noqa: UP045
        default = _default(parameter)
        fields.append((option, annotation) if default is MISSING else (option, annotation, default))
    schema = make_dataclass(name or f"{target.__name__}Config", fields)
    schema.__doc__ = f""":class:`{target.__module__}.{target.__qualname__}` arguments, one field each, derived from its
    signature (names, types, defaults): the callback is the one declaration of its options.

    Example:
        >>> import dataclasses
        >>> from lightning_compress.config.sections import signature_options
        >>> from {target.__module__} import {target.__qualname__}
        >>> [f.name for f in dataclasses.fields({schema.__name__})] == list(signature_options({target.__qualname__}))
        True
    """
    schema.__module__ = module or __name__
    return schema


def argument_help(target: Any) -> dict[str, str]:
    """The text of each argument in the Google-style ``Args:`` section of ``target``'s docstring.

    Example:
        >>> from lightning_compress.callbacks import NeuronReport
        >>> argument_help(NeuronReport)["every_n_epochs"]
        'Report every N epochs (and at fit end).'
    """
    doc = inspect.getdoc(target) or ""
    block = re.search(r"^Args:\n(.*?)(?:^\S|\Z)", doc, re.S | re.M)
    found: dict[str, str] = {}
    name = None
    for line in (block.group(1) if block else "").splitlines():
        if m := re.match(r"^    (\w+)(?: \(.*?\))?: (.*)$", line):
            name, found[m.group(1)] = m.group(1), m.group(2)
        elif name is not None and line.startswith("        "):
            found[name] += " " + line.strip()
    return {
        k: re.sub(r":\w+:`~?([\w.]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], v).replace("``", "")
        for k, v in found.items()
    }


def flag(option: str) -> str:
    """The command-line flag of an option: ``--param-ratio`` for ``param_ratio``."""
    return "--" + option.replace("_", "-")


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    target: Any,
    options: typing.Iterable[str],
    *,
    defaults: bool = True,
    exclusive_required: bool = False,
) -> None:
    """Add one flag per option of ``target``: type, choices, default and help from its signature and docstring.

    ``defaults=False`` leaves every flag's default ``None``; ``exclusive_required`` makes the flags a
    group of which exactly one must be given.

    Example:
        >>> from lightning_compress.callbacks import LowRankCompression
        >>> parser = argparse.ArgumentParser()
        >>> add_flags(parser, LowRankCompression, ["method", "include"])
        >>> parser.parse_args(["--method", "svd", "--include", "fc1", "fc2"])
        Namespace(method='svd', include=['fc1', 'fc2'])
    """
    signature, texts = signature_options(target), argument_help(target)
    if exclusive_required:
        parser = parser.add_mutually_exclusive_group(required=True)
    for option in options:
        parameter = signature[option]
        kind, _ = config_type(parameter.annotation)
        kwargs: dict[str, Any] = {"help": texts.get(option, ""), "dest": option}
        default = parameter.default
        if inspect.isclass(kind) and issubclass(kind, Enum):
            kwargs["choices"] = [m.value for m in kind]
            default = default.value if isinstance(default, Enum) else default
        elif literal := _literal_choices(parameter.annotation):
            kwargs["choices"] = literal
        elif typing.get_origin(kind) is list:
            kwargs["nargs"] = "+"
            kwargs["type"] = typing.get_args(kind)[0]
            default = None if default is None else list(default)
        elif kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif kind in (int, float, str):
            kwargs["type"] = kind
        kwargs["default"] = default if defaults else None
        parser.add_argument(flag(option), **kwargs)


def _literal_choices(hint: Any) -> list[str] | None:
    for arg in _union_args(hint) or (hint,):
        if typing.get_origin(arg) is typing.Literal:
            return list(typing.get_args(arg))
    return None
