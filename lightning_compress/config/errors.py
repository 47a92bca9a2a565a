"""The one error every config problem is reported with."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A configuration problem, with the dotted key it concerns.

    Example:
        >>> str(ConfigError("optimizer.lr", "must be > 0, got -1.0"))
        'optimizer.lr: must be > 0, got -1.0'
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
