"""The compression methods a config can name: one entry each, mapping a section to its callback.

A section's schema is derived from its callback's signature (:func:`~lightning_compress.config.sections.section_schema`):
a new method is its callback plus one entry in :data:`METHODS`, and a new callback argument is a new key
with no other edit. The ``compression`` section's schema is made from this table, and a bad value is
reported under ``compression.<section>.<argument>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Optional

from lightning.pytorch.callbacks import Callback

from lightning_compress._checks import ArgumentError
from lightning_compress.callbacks import (
    FlexibleRank,
    GroupSparsity,
    LowRank,
    LowRankCompression,
    NeuronReport,
    StructuredPruning,
)
from lightning_compress.config.errors import ConfigError
from lightning_compress.config.sections import section_schema

__all__ = [
    "METHODS",
    "CompressionConfig",
    "FlexibleRankConfig",
    "GroupSparsityConfig",
    "LowRankCompressionConfig",
    "LowRankConfig",
    "Method",
    "NeuronReportConfig",
    "PruningConfig",
    "build_callbacks",
    "preflight_callbacks",
]


@dataclass(frozen=True)
class Method:
    """A compression method's config section: the callback it builds, its schema derived from the callback.

    Example:
        >>> METHODS['pruning'].schema.__name__
        'PruningConfig'
        >>> METHODS['pruning'].build(METHODS['pruning'].schema(min_width=2))[0].min_width
        2
    """

    callback: Callable[..., Callback]
    help: str = ""
    name: str | None = None  # the schema's class name (default: <Callback>Config)
    schema: type = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "schema", section_schema(self.callback, self.name, module=__name__))

    def build(self, section: Any) -> list[Callback]:
        """The section's callback, from its fields (enums passed as their values)."""
        kwargs = {k: (v.value if isinstance(v, Enum) else v) for k, v in vars(section).items()}
        return [self.callback(**kwargs)]


# In the order the callbacks must run in (a regularizer before the pruning that removes its zeros).
METHODS = MappingProxyType(
    {
        "group_sparsity": Method(GroupSparsity, "zero whole neurons (group lasso)"),
        "low_rank": Method(LowRank, "low-rank weights, layers split in two"),
        "pruning": Method(StructuredPruning, "remove (near-)zero neurons physically", "PruningConfig"),
        "low_rank_compression": Method(
            LowRankCompression, "split trained layers in two on data (DALR, SVD, SVD with bias compensation)"
        ),
        "flexible_rank": Method(
            FlexibleRank, "one model that runs at any rank after training (Decomposable-Net)"
        ),
        "neuron_report": Method(NeuronReport, "log how many neurons are near zero"),
    }
)

GroupSparsityConfig: Any = METHODS["group_sparsity"].schema
LowRankConfig: Any = METHODS["low_rank"].schema
PruningConfig: Any = METHODS["pruning"].schema
LowRankCompressionConfig: Any = METHODS["low_rank_compression"].schema
NeuronReportConfig: Any = METHODS["neuron_report"].schema
FlexibleRankConfig: Any = METHODS["flexible_rank"].schema

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


def preflight_callbacks(callbacks: list[Callback], module: Any, max_epochs: int | None = None) -> None:
    """Let each callback check what needs the model or the fit's length (``preflight``) before training.

    Raises:
        ConfigError: naming ``compression.<section>.<argument>`` (a layer pattern matching nothing, a size
            target the floors forbid, an epoch the fit never reaches).

    Example:
        >>> from lightning_compress.models import Classifier
        >>> section = GroupSparsityConfig(strength=None, target_params=0.01, keep_ratio=0.5)
        >>> preflight_callbacks(build_callbacks(CompressionConfig(group_sparsity=section)), Classifier())
        Traceback (most recent call last):
        ...
        lightning_compress.config.errors.ConfigError: compression.group_sparsity.target_params: target_params=0.01 cannot be reached: the floors (one group a layer, keep_ratio) leave 125,810 params (47.2% of dense); ask for a larger size
    """
    sections = {method.callback: name for name, method in METHODS.items()}
    for callback in callbacks:
        check = getattr(callback, "preflight", None)
        if check is None:
            continue
        try:
            check(module, max_epochs)
        except ArgumentError as err:
            raise ConfigError(
                f"compression.{sections.get(type(callback), '?')}.{err.argument}", str(err)
            ) from None
        except ValueError as err:  # e.g. include/exclude leaving no layer at all
            raise ConfigError(f"compression.{sections.get(type(callback), '?')}", str(err)) from None
