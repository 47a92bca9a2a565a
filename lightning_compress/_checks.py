"""Argument checks shared by every layer: one-line errors that name the argument, its value and the choices."""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import Enum
from typing import TypeVar, overload

__all__ = ["ArgumentError", "check_choice", "check_int", "check_ints", "check_nonneg"]

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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is an int to Python, not to a user


@overload
def check_int(value: object, name: str, minimum: int) -> int: ...
@overload
def check_int(value: object, name: str, minimum: int, *, optional: bool) -> int | None: ...
def check_int(value: object, name: str, minimum: int, *, optional: bool = False) -> int | None:
    """``value`` as an int ``>= minimum`` (``None`` too with ``optional``), or an :class:`ArgumentError`.

    Example:
        >>> check_int(3, "every_n_steps", 1)
        3
        >>> check_int(True, "every_n_steps", 1)
        Traceback (most recent call last):
        ...
        lightning_compress._checks.ArgumentError: every_n_steps must be an int >= 1, got every_n_steps=True
    """
    if optional and value is None:
        return None
    if not _is_int(value) or value < minimum:  # type: ignore[operator]
        suffix = " or None" if optional else ""
        raise ArgumentError(name, f"{name} must be an int >= {minimum}{suffix}, got {name}={value!r}")
    return value  # type: ignore[return-value]


def check_ints(values: Iterable[object], name: str, minimum: int) -> list[int]:
    """Every item an int ``>= minimum``, sorted without repeats, or an :class:`ArgumentError`.

    Example:
        >>> check_ints((3, 1, 3), "epochs", 0)
        [1, 3]
    """
    items = list(values)
    if any(not _is_int(v) or v < minimum for v in items):  # type: ignore[operator]
        raise ArgumentError(name, f"{name} must be ints >= {minimum}, got {name}={items!r}")
    return sorted({int(v) for v in items})  # type: ignore[call-overload]
