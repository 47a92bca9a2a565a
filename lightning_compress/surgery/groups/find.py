"""What can be removed together: the pipeline from a model to its families of groups."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import torch_pruning as tp
from torch import nn

from lightning_compress.surgery.base.tracing import build_dependency_graph
from lightning_compress.surgery.groups.attention import find_hand_attention, hand_head_groups
from lightning_compress.surgery.groups.core import NeuronGroups, channel_families, without_inexact_norms
from lightning_compress.surgery.groups.heads import head_groups
from lightning_compress.surgery.groups.selectors import LayerSelector, matches, validate_selectors
from lightning_compress.surgery.groups.trial import without_failed_trials

__all__ = ["find_groups", "selected"]


def selected(
    model: nn.Module,
    family: NeuronGroups,
    include: Sequence[LayerSelector] | None,
    exclude: Sequence[LayerSelector],
) -> bool:
    """Whether a family passes ``include`` (one of its layers matches) and ``exclude`` (none matches)."""
    layers = [(n, model.get_submodule(n)) for n in family.layers]
    if include and not any(matches(n, m, include) for n, m in layers):
        return False
    return not any(matches(n, m, exclude) for n, m in layers)


def _clear_of_attention(family: NeuronGroups, left_out: set[str]) -> bool:
    """Whether ``family`` holds no q/k/v output channel and reads no width an attention cannot lose
    (warned about when it is a width that is lost)."""
    if any(s.incoming and s.module in left_out for s in family.slices):
        return False  # q/k/v channels: the attention's heads are the unit
    reader = next(
        (s.module for s in family.slices if not s.incoming and s.module.rpartition(".")[0] in left_out), None
    )
    if reader is None:
        return True
    warnings.warn(
        f"the channels of {family.name!r} are not grouped: attention {reader.rpartition('.')[0]!r} "
        "reads them and its forward fails without one",
        stacklevel=3,
    )
    return False


def find_groups(
    model: nn.Module,
    example_inputs: Any,
    *,
    include: Sequence[LayerSelector] | None = None,
    exclude: Sequence[LayerSelector] = (),
    graph: tp.DependencyGraph | None = None,
) -> list[NeuronGroups]:
    """The neuron/channel groups of every prunable layer, output layers left out, and attention heads.

    A pipeline, each step a function of its own:

    1. :func:`~lightning_compress.surgery.groups.core.channel_families`: the dependency graph's groups,
       one family per layer whose outputs feed another (channels tied by a residual add are one family
       listing every layer that feeds it; which layer kinds are grouped, and how, is in
       :mod:`~lightning_compress.surgery.groups.layer_kinds`);
    2. :func:`selected`: ``include`` / ``exclude``;
    3. :func:`~lightning_compress.surgery.groups.core.without_inexact_norms`: families reaching a
       feature normalization that removal would change are dropped, with a warning;
    4. attention heads: each ``nn.MultiheadAttention`` (:func:`~lightning_compress.surgery.groups.heads.head_groups`)
       and each recognized hand-written attention
       (:func:`~lightning_compress.surgery.groups.attention.hand_head_groups`) gives a family
       ``"<layer>:heads"``; channel families touching a q/k/v projection are dropped;
    5. module order.

    Args:
        model: The network.
        example_inputs: An input for tracing (a batch of one is enough).
        include: Keep only groups with a layer matching one of these name patterns (``fnmatch``) or types.
        exclude: Drop groups with a layer matching one of these.
        graph: A dependency graph already built for ``model``.

    Example:
        >>> import torch
        >>> from lightning_compress.models import LeNet300100
        >>> groups = find_groups(LeNet300100(), torch.zeros(1, 1, 28, 28))
        >>> [(g.name, g.num_groups) for g in groups]
        [('1', 300), ('3', 100)]
    """
    validate_selectors(model, list(include or []), "include")
    validate_selectors(model, exclude, "exclude")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        families = _pipeline(model, example_inputs, include, exclude, graph)
    told = _TOLD.setdefault(model, set())
    for w in said:  # each skipped family once per model, however often its groups are found
        if (text := str(w.message)) not in told:
            told.add(text)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return families


_TOLD: weakref.WeakKeyDictionary[nn.Module, set[str]] = weakref.WeakKeyDictionary()


def _pipeline(
    model: nn.Module,
    example_inputs: Any,
    include: Sequence[LayerSelector] | None,
    exclude: Sequence[LayerSelector],
    graph: tp.DependencyGraph | None,
) -> list[NeuronGroups]:
    dg = graph if graph is not None else build_dependency_graph(model, example_inputs)
    qkv = {a.path(i) for a in find_hand_attention(model) for i in a.inputs}
    families = [f for f in channel_families(model, dg, qkv) if selected(model, f, include, exclude)]
    families = without_inexact_norms(model, families, example_inputs)
    families = without_failed_trials(model, families, example_inputs)
    hand, left_out = hand_head_groups(model, example_inputs)
    families = [f for f in families if _clear_of_attention(f, left_out)]
    families += [f for f in (*head_groups(model), *hand) if selected(model, f, include, exclude)]
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    return sorted(families, key=lambda f: order[f.layers[0] if f.name not in order else f.name])
