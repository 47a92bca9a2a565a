"""Which layers an ``include`` / ``exclude`` list selects: name patterns (``fnmatch``) or module types."""

from __future__ import annotations

import fnmatch
import functools
import importlib
from collections.abc import Sequence

from torch import nn

from lightning_compress._checks import ArgumentError

__all__ = ["LayerSelector", "check_selectors", "matches", "resolve_selector", "validate_selectors"]

LayerSelector = type[nn.Module] | str
"""A module type, a type's name (``"torch.nn.Linear"``, ``"Conv2d"``: any ``torch.nn`` class by its bare
name, any other by its import path) or a layer name pattern (``fnmatch``: ``"features.*"``)."""


@functools.lru_cache(maxsize=256)
def _named_type(text: str) -> type[nn.Module] | None:
    if any(c in text for c in "*?[]"):
        return None
    module_path, _, name = text.rpartition(".")
    candidates = [(module_path, name)] if module_path else [("torch.nn", name)]
    for path, attr in candidates:
        if not attr or not attr[:1].isupper():
            continue
        try:
            found = getattr(importlib.import_module(path), attr, None)
        except ImportError:
            continue
        if isinstance(found, type) and issubclass(found, nn.Module):
            return found
    return None


def resolve_selector(selector: LayerSelector) -> LayerSelector:
    """A type name as the type it names; a module type or a name pattern unchanged.

    Example:
        >>> resolve_selector("torch.nn.Linear"), resolve_selector("Conv2d"), resolve_selector("features.*")
        (<class 'torch.nn.modules.linear.Linear'>, <class 'torch.nn.modules.conv.Conv2d'>, 'features.*')
    """
    if isinstance(selector, str):
        return _named_type(selector) or selector
    return selector


def check_selectors(include: Sequence[LayerSelector] | None, exclude: Sequence[LayerSelector]) -> None:
    """Reject a bare string or type where a list of layer selectors is expected.

    Example:
        >>> check_selectors(["model.1", nn.Conv2d], ())
        >>> check_selectors("model.1", ())
        Traceback (most recent call last):
        ...
        lightning_compress._checks.ArgumentError: include must be a list of name patterns or module types, got 'model.1'
    """
    for name, value in (("include", include or []), ("exclude", exclude)):
        if isinstance(value, (str, type)):
            raise ArgumentError(
                name, f"{name} must be a list of name patterns or module types, got {value!r}"
            )


def matches(name: str, layer: nn.Module, selectors: Sequence[LayerSelector]) -> bool:
    for sel in map(resolve_selector, selectors):
        if isinstance(sel, str) and fnmatch.fnmatchcase(name, sel):
            return True
        if isinstance(sel, type) and isinstance(layer, sel):
            return True
    return False


def validate_selectors(model: nn.Module, selectors: Sequence[LayerSelector], argument: str) -> None:
    named = [(n, m) for n, m in model.named_modules() if n]
    for sel in selectors:
        if not isinstance(sel, (str, type)):
            raise TypeError(f"{argument} entries must be name patterns or module types, got {sel!r}")
        if not any(matches(n, m, [sel]) for n, m in named):
            layers = ", ".join(n for n, m in named if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)))
            raise ValueError(f"{argument} entry {sel!r} matches no layer; layers are: {layers}")
