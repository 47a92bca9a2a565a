"""A config section as keyword arguments of plain types."""

from __future__ import annotations

from dataclasses import asdict
from enum import Enum
from typing import Any

__all__ = ["plain"]


def plain(section: Any) -> dict[str, Any]:
    """The fields of a section dataclass, enums replaced by their values."""
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(section).items()}
