"""Which layers an ``include`` / ``exclude`` list selects: name patterns (``fnmatch``) or module types."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from torch import nn

from lightning_compress._checks import ArgumentError

__all__ = ["LayerSelector", "check_selectors", "matches", "validate_selectors"]

LayerSelector = str | type[nn.Module]


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
    for sel in selectors:
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
