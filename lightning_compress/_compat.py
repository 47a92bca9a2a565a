"""The one place that touches framework internals, so an upgrade breaks here and nowhere else."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch.distributed as dist
import torch_pruning.dependency.graph as tp_graph
from torch import nn
from torch.nn.parallel import DistributedDataParallel

if TYPE_CHECKING:  # surgery reads this module too, and runs without Lightning
    import lightning.pytorch as pl

__all__ = ["WalkTooLong", "bounded_group", "close_process_group", "parameter_names", "rewrap_ddp", "trial_id"]


class WalkTooLong(RuntimeError):
    """Torch-Pruning's walk for one group went past its budget of coupled slices; ``items`` holds what
    it had reached (the layers of the family it was walking)."""

    def __init__(self, message: str, items: list[Any]) -> None:
        super().__init__(message)
        self.items = items


@contextmanager
def bounded_group(budget: int, indices: int) -> Iterator[None]:
    """Make every Torch-Pruning group built inside stop with :class:`WalkTooLong` past ``budget`` items
    or ``indices`` channel indices in all.

    Torch-Pruning's walk from a root layer re-visits a layer whenever the channel indices reaching it
    differ; through some chains of reshapes and rolls (shifted-window attention, rotary embeddings) they
    keep differing and the walk grows without end. It builds its groups with the ``Group`` class of its
    ``graph`` module, which is swapped here for one that counts (items, and indices: a chain of flattens
    multiplies them).
    """
    original = tp_graph.Group

    class _Counted(original):  # type: ignore[misc,valid-type]
        def add_dep(self, dep: Any, idxs: Any) -> None:
            self._volume = getattr(self, "_volume", 0) + len(idxs)
            if len(self._group) >= budget or self._volume > indices:
                raise WalkTooLong(f"more than {budget} coupled slices or {indices} indices", self._group)
            super().add_dep(dep, idxs)

    tp_graph.Group = _Counted
    try:
        yield
    finally:
        tp_graph.Group = original


def parameter_names(graph: Any) -> dict[nn.Parameter, str]:
    """Parameter -> qualified name of a Torch-Pruning ``DependencyGraph`` (its ``_param_to_name``, which
    names the raw parameters it saw: Torch-Pruning has no public accessor)."""
    return dict(graph._param_to_name)


def trial_id(trial: Any) -> int:
    """The storage id of an Optuna trial (``Trial._trial_id``): the storage API writes by id, and a
    trial's intermediate values and constraints are written through it."""
    return int(trial._trial_id)


def rewrap_ddp(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
    """After a shape change, wrap the module in a new DistributedDataParallel over its new parameters.

    DDP's reducer keeps the parameter list it was built with; a pruned or factorized model needs a fresh
    wrapper, else gradients of the new parameters are never all-reduced. Uses ``DDPStrategy._setup_model``
    (Lightning has no public way to re-wrap).
    """
    strategy: Any = trainer.strategy
    if isinstance(strategy.model, DistributedDataParallel) and hasattr(strategy, "_setup_model"):
        strategy.model = strategy._setup_model(pl_module)


def close_process_group(trainer: pl.Trainer) -> None:
    """Wait for every rank, then destroy the default process group while the interpreter is still whole.

    Lightning destroys it at exit only for NCCL; a gloo group left to interpreter finalization can abort
    the process ("terminate called without an active exception") after all work is done.
    """
    if dist.is_available() and dist.is_initialized():
        trainer.strategy.barrier("close_process_group")
        dist.destroy_process_group()
