"""Names the sweep modules share with the command line, importable without Optuna."""

from __future__ import annotations

__all__ = ["STORAGE_ENV"]

STORAGE_ENV = "LIGHTNING_COMPRESS_STORAGE"
"""The environment variable that may hold the storage URL, so that a password stays out of process lists."""
