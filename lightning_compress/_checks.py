"""Argument checks shared by every layer: one-line errors that name the argument, its value and the choices."""

from __future__ import annotations

import math
from enum import Enum
from typing import TypeVar

__all__ = ["ArgumentError", "check_choice", "check_nonneg"]

E = TypeVar("E", bound=Enum)


class ArgumentError(ValueError):
    """A bad value for one named argument; ``argument`` says which (configs map it to their key).

    Example:
        >>> err = ArgumentError("strength", "strength must be >= 0, got strength=-1")
        >>> err.argument, str(err)
        ('strength', 'strength must be >= 0, got strength=-1')
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


def check_choice(kind: type[E], value: object, name: str) -> E:
    """``value`` as a member of the closed choice ``kind`` (an ``Enum`` of strings), or an :class:`ArgumentError`.

    Example:
        >>> class Color(str, Enum):
        ...     red = "red"
        >>> check_choice(Color, "red", "color") is Color.red
        True
        >>> check_choice(Color, "blue", "color")
        Traceback (most recent call last):
        ...
        lightning_compress._checks.ArgumentError: color must be one of ('red',), got color='blue'
    """
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        choices = tuple(m.value for m in kind)
        raise ArgumentError(name, f"{name} must be one of {choices}, got {name}={value!r}") from None


def check_nonneg(value: object, name: str) -> float:
    """``value`` as a float, or an :class:`ArgumentError` unless it is a finite number >= 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ArgumentError(name, f"{name} must be a finite number >= 0, got {name}={value!r}")
    return float(value)
