"""The ``lightning-compress`` command line: ``train``, ``sweep``, ``report``, ``neurons``."""

from __future__ import annotations

from typing import Any

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    # imported on first use, so ``python -m lightning_compress.cli.main`` runs the module only once
    if name == "main":
        from lightning_compress.cli.main import main

        return main
    raise AttributeError(name)
