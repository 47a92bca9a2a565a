"""Torch-Pruning's groups, one walk at a time, each stopped when it does not settle."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import torch_pruning as tp
from torch import nn

from lightning_compress._compat import WalkTooLong, bounded_group
from lightning_compress.surgery.base.conv1d import is_conv1d

__all__ = ["WALK_BUDGET", "WALK_INDICES", "settled_groups"]

WALK_BUDGET = 2_000
"""Items of one group's walk (each checked against all before: the walk's time grows as their square)."""
WALK_INDICES = 2_000_000
"""Channel indices of one group's walk in all (a flatten multiplies them)."""


def settled_groups(dg: tp.DependencyGraph, names: dict[nn.Module, str], skip: set[str]) -> Iterator[Any]:
    """The graph's group of each Linear or conv not yet in one and not named in ``skip``, as
    ``get_all_groups`` gives them, except that a group whose walk does not settle is left out with a
    warning instead of growing without end.

    Example:
        >>> import torch
        >>> from lightning_compress.surgery.base import build_dependency_graph
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> names = {m: n for n, m in model.named_modules()}
        >>> graph = build_dependency_graph(model, torch.zeros(1, 3))
        >>> sorted(names[g[0].dep.target.module] for g in settled_groups(graph, names, set()))
        ['0', '2']
    """
    seen: set[nn.Module] = {m for m, n in names.items() if n in skip}
    for module in list(dg.module2node):
        if not isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)) and not is_conv1d(module):
            continue
        if module in seen:
            continue
        pruner = dg.get_pruner_of_module(module)
        if pruner is None or pruner.get_out_channels(module) is None:
            continue
        try:
            with bounded_group(WALK_BUDGET, WALK_INDICES):
                group = dg.get_pruning_group(
                    module, pruner.prune_out_channels, list(range(pruner.get_out_channels(module)))
                )
        except WalkTooLong as stop:
            warnings.warn(
                f"the channels of {names.get(module, type(module).__name__)!r} stay: the dependency walk "
                f"from it went past {WALK_BUDGET} coupled slices or {WALK_INDICES} indices without "
                "settling (index mappings through reshapes that do not close)",
                stacklevel=4,
            )
            seen.add(module)  # and the layers it reached: the same family, not walked (nor warned) again
            seen.update(
                item.dep.target.module
                for item in stop.items
                if dg.is_out_channel_pruning_fn(item.dep.handler)
            )
            continue
        seen.update(
            item.dep.target.module for item in group if dg.is_out_channel_pruning_fn(item.dep.handler)
        )
        yield group
