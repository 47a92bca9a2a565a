"""Quieter command-line logs (imports nothing heavy)."""

from __future__ import annotations

import logging

__all__ = ["hide_lightning_tips"]


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("\N{ELECTRIC LIGHT BULB} Tip")


def hide_lightning_tips() -> None:
    """Drop Lightning's advertising tips (``Tip: try installing ...``) from the logs; idempotent.

    Example:
        >>> hide_lightning_tips(); hide_lightning_tips()
        >>> len(logging.getLogger("lightning.pytorch.utilities.rank_zero").filters)
        1
    """
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoTips) for f in logger.filters):
            logger.addFilter(_NoTips())
