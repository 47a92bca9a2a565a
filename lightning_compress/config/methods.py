"""The compression methods a config can name: one entry each, mapping a section to its schema and builder.

A new method is a new file in this package (a dataclass for its section and a function building its
callbacks from it) plus one entry in :data:`METHODS`. The ``compression`` section's schema is made from
this table, and a bad value is reported under ``compression.<section>.<argument>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from types import MappingProxyType
from typing import Any, Optional

from lightning.pytorch.callbacks import Callback

from lightning_compress._checks import ArgumentError
from lightning_compress.config.errors import ConfigError
from lightning_compress.config.group_sparsity import GroupSparsityConfig, build_group_sparsity
from lightning_compress.config.low_rank import LowRankConfig, build_low_rank
from lightning_compress.config.low_rank_compression import (
    LowRankCompressionConfig,
    build_low_rank_compression,
)
from lightning_compress.config.neuron_report import NeuronReportConfig, build_neuron_report
from lightning_compress.config.pruning import PruningConfig, build_pruning

__all__ = ["METHODS", "CompressionConfig", "Method", "build_callbacks"]


@dataclass(frozen=True)
class Method:
    """A compression method's config section: its schema and the callbacks it builds.

    Example:
        >>> METHODS['pruning'].schema.__name__
        'PruningConfig'
    """

    schema: type
    build: Callable[[Any], list[Callback]]
    help: str = ""


# In the order the callbacks must run in (a regularizer before the pruning that removes its zeros).
METHODS = MappingProxyType(
    {
        "group_sparsity": Method(
            GroupSparsityConfig, build_group_sparsity, "zero whole neurons (group lasso)"
        ),
        "low_rank": Method(LowRankConfig, build_low_rank, "low-rank weights, layers split in two"),
        "pruning": Method(PruningConfig, build_pruning, "remove (near-)zero neurons physically"),
        "low_rank_compression": Method(
            LowRankCompressionConfig,
            build_low_rank_compression,
            "split trained layers in two on data (DALR, SVD, SVD with bias compensation)",
        ),
        "neuron_report": Method(
            NeuronReportConfig, build_neuron_report, "log how many neurons are near zero"
        ),
    }
)

CompressionConfig: Any = make_dataclass(
    "CompressionConfig",
    [(name, Optional[m.schema], field(default=None)) for name, m in METHODS.items()],  # noqa: UP045
)
CompressionConfig.__doc__ = f"""Compression methods applied during training, one optional sub-section each.

    The fields are the entries of ``METHODS`` ({", ".join(METHODS)}); an empty section trains the
    dense model.

    Example:
        >>> CompressionConfig(pruning=PruningConfig()).group_sparsity is None
        True
    """
CompressionConfig.__module__ = __name__


def build_callbacks(cfg: Any) -> list[Callback]:
    """The callbacks a ``compression`` section asks for, in the order they must run.

    Raises:
        ConfigError: naming ``compression.<section>.<argument>`` for a value a callback refuses.

    Example:
        >>> build_callbacks(CompressionConfig(group_sparsity=GroupSparsityConfig(strength=0.01), pruning=PruningConfig()))
        [GroupSparsity(strength=0.01, l1_ratio=0.0, groups='incoming', schedule='step'), StructuredPruning(epochs=[], every_n_epochs=None, threshold=0.0, relative_threshold=0.0, min_width=1)]
    """
    callbacks: list[Callback] = []
    for name, method in METHODS.items():
        section = getattr(cfg, name, None)
        if section is None:
            continue
        try:
            callbacks += method.build(section)
        except ArgumentError as err:
            raise ConfigError(f"compression.{name}.{err.argument}", str(err)) from None
        except (ValueError, TypeError) as err:
            raise ConfigError(f"compression.{name}", str(err)) from None
    return callbacks
