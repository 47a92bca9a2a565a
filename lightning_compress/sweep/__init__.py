"""Optuna multi-objective sweeps over compression strength (parameters or MACs vs validation accuracy).

Needs the ``sweep`` extra: ``pip install 'lightning-compress[sweep]'``.
"""

from __future__ import annotations

from typing import Any

from lightning_compress.sweep._env import STORAGE_ENV

__all__ = ["STORAGE_ENV", "load_sweep", "run_sweep", "summarize"]


def __getattr__(name: str) -> Any:
    # imported lazily: optuna and wandb are optional, and importing the package has no side effects
    if name in ("run_sweep", "summarize"):
        from lightning_compress.sweep import runner

        return getattr(runner, name)
    if name == "load_sweep":
        from lightning_compress.sweep.load import load_sweep

        return load_sweep
    raise AttributeError(name)
