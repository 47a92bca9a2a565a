"""lightning-compress: make networks smaller while they train, with Lightning callbacks.

Layers, importing downwards only (an import-linter contract checks it)::

    cli, sweep      entry points: the command line, Optuna sweeps
    run             one training run from a config (used by both entry points)
    config          structured configs; one section per compression method (config.METHODS)
    callbacks       WHEN: schedules, Lightning hooks, DDP, checkpoint state
    regularizers    penalties with their proximal steps, usable without Lightning
    surgery         shape changes, history replay, optimizer rebinding, activation statistics, size
    functional      pure tensor math

``data`` and ``models`` are examples for demos, benchmarks and tests; the library does not import them.
Where a new method's pieces go: ``docs/adding-a-method.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# the names users reach for, imported on first use: ``import lightning_compress`` stays cheap
_LAZY = {
    "CompressibleMixin": "lightning_compress.callbacks",
    "GroupSparsity": "lightning_compress.callbacks",
    "LowRank": "lightning_compress.callbacks",
    "LowRankCompression": "lightning_compress.callbacks",
    "NeuronReport": "lightning_compress.callbacks",
    "StructuredPruning": "lightning_compress.callbacks",
    "GroupLasso": "lightning_compress.regularizers",
    "NuclearNorm": "lightning_compress.regularizers",
    "compress_low_rank": "lightning_compress.surgery",
    "compress_zero_groups": "lightning_compress.surgery",
    "export_model": "lightning_compress.surgery",
    "load_compressed": "lightning_compress.surgery",
}

__all__ = [
    "CompressibleMixin",
    "GroupLasso",
    "GroupSparsity",
    "LowRank",
    "LowRankCompression",
    "NeuronReport",
    "NuclearNorm",
    "StructuredPruning",
    "__version__",
    "compress_low_rank",
    "compress_zero_groups",
    "export_model",
    "load_compressed",
]

if TYPE_CHECKING:
    from lightning_compress.callbacks import (
        CompressibleMixin,
        GroupSparsity,
        LowRank,
        LowRankCompression,
        NeuronReport,
        StructuredPruning,
    )
    from lightning_compress.regularizers import GroupLasso, NuclearNorm
    from lightning_compress.surgery import (
        compress_low_rank,
        compress_zero_groups,
        export_model,
        load_compressed,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lightning_compress' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
