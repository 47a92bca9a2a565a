"""Find the parameter groups of a model's neurons/channels with Torch-Pruning's dependency graph.

A neuron's *incoming* group is what the 2016 paper regularizes: the producing layer's weights and bias,
its normalization entries, and, for channels tied by a residual add, the same entries of every layer that
feeds the add. Its *coupled* group adds the *outgoing* slices: the consumers' input weights. Removing a
neuron removes the whole coupled group. Its *bn* group keeps only the BatchNorm scale and shift when
every layer producing the channel is followed by a BatchNorm: the producer's filter is then free in
scale (normalization undoes it), so a penalty on it shrinks it without resistance from the loss; a
channel with zero scale and shift outputs exactly zero, whatever its filter. The check is that a group
holds as many BatchNorms as producing layers (the conv -> BN layout of post-activation networks); a
pre-activation layout, where a BatchNorm follows a residual add, is not told apart by it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

import torch
import torch_pruning as tp
from torch import nn

from lightning_compress.functional.sliced import GroupPiece
from lightning_compress.surgery.layer_kinds import (
    NORMS,
    NotGroupable,
    channel_blocks,
    is_depthwise,
    param_specs,
)
from lightning_compress.surgery.norms import layers_feeding_feature_norms
from lightning_compress.surgery.selectors import LayerSelector, matches, validate_selectors
from lightning_compress.surgery.tracing import build_dependency_graph, kept_modes

__all__ = [
    "GROUP_MODES",
    "GroupMode",
    "LayerSelector",
    "NeuronGroups",
    "build_dependency_graph",
    "find_groups",
    "kept_modes",
]


class GroupMode(str, Enum):
    """Which parameters make up a neuron's group (see the module docstring).

    Example:
        >>> GroupMode("coupled") is GroupMode.coupled
        True
    """

    incoming = "incoming"
    coupled = "coupled"
    bn = "bn"


GroupModeName = Literal["incoming", "coupled", "bn"]
"""The values of :class:`GroupMode`, for signatures that command-line parsers read (``Literal`` choices)."""


GROUP_MODES = tuple(m.value for m in GroupMode)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_NORMS = NORMS


@dataclass
class Slice:
    """Positions of one parameter that belong to a family of groups."""

    module: str
    param: str
    dim: int
    index: torch.Tensor | None
    root: torch.Tensor | None
    incoming: bool


@dataclass
class NeuronGroups:
    """The ``num_groups`` neurons (channels) of a root layer and every parameter slice coupled to them.

    Attributes:
        name: Qualified name of the root layer (the one Torch-Pruning prunes the group through).
        num_groups: Number of neurons/channels.
        slices: Where each group's parameters live.
        layers: Names of all layers whose outputs are these neurons (several for a residual add).
        blocks: Removals are made evenly from this many equal blocks of the groups (a grouped conv's).

    Example:
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> family = find_groups(model, torch.zeros(1, 3))[0]
        >>> family.name, family.num_groups, [(p.tensor.shape, p.dim) for p in family.pieces(model, "coupled")]
        ('0', 4, [(torch.Size([4, 3]), 0), (torch.Size([4]), 0), (torch.Size([2, 4]), 1)])
    """

    name: str
    num_groups: int
    slices: list[Slice]
    layers: list[str]
    blocks: int = 1

    def pieces(self, model: nn.Module, mode: str = "incoming") -> list[GroupPiece]:
        """The groups' pieces over the live parameters' data (``mode``: one of :data:`GROUP_MODES`)."""
        return [
            GroupPiece(getattr(model.get_submodule(s.module), s.param).data, s.dim, s.index, s.root)
            for s in self.selected(model, mode)
        ]

    def parameters(self, model: nn.Module, mode: str = "incoming") -> list[nn.Parameter]:
        """The live parameters behind :meth:`pieces`, in the same order."""
        return [getattr(model.get_submodule(s.module), s.param) for s in self.selected(model, mode)]

    def positions(self, sl: Slice, groups: torch.Tensor) -> torch.Tensor:
        """Where groups ``groups`` lie along ``sl.dim`` of the slice's parameter."""
        roots = sl.root if sl.root is not None else torch.arange(self.num_groups)
        positions = sl.index if sl.index is not None else torch.arange(len(roots))
        return positions[torch.isin(roots, groups)]

    def selected(self, model: nn.Module, mode: str = "incoming") -> list[Slice]:
        """The slices of ``mode``'s groups; ``"bn"`` falls back to ``"incoming"`` where a producer has no BatchNorm."""
        mode = GroupMode(mode)
        if mode == GroupMode.coupled:
            return list(self.slices)
        incoming = [s for s in self.slices if s.incoming]
        if mode == GroupMode.bn:
            norms = [s for s in incoming if isinstance(model.get_submodule(s.module), _BATCH_NORMS)]
            producers = {s.module for s in incoming if s.param == "weight"} - {s.module for s in norms}
            if norms and len({s.module for s in norms}) == len(producers):
                return norms
        return incoming


def _as_index(
    idxs: Sequence[int], roots: Sequence[int], size: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    full = len(idxs) == size and list(idxs) == list(range(size))
    identity = list(roots) == list(idxs)
    index = None if full else torch.as_tensor(list(idxs), dtype=torch.long)
    root = None if identity and full else torch.as_tensor(list(roots), dtype=torch.long)
    return index, root


def _slices_of(
    layer: nn.Module, name: str, outgoing: bool, idxs: Sequence[int], roots: Sequence[int]
) -> list[Slice]:
    out = []
    for path, dim in param_specs(layer, name, outgoing):
        child, _, param = path.rpartition(".")  # "out_proj.weight": a child's parameter
        tensor = getattr(layer.get_submodule(child), param, None)
        if not isinstance(tensor, torch.Tensor):
            continue
        index, root = _as_index(idxs, roots, tensor.shape[dim])
        out.append(
            Slice(f"{name}.{child}" if child else name, param, dim, index, root, incoming=not outgoing)
        )
    return out


def _own_layer_norms(model: nn.Module, family: NeuronGroups) -> set[str]:
    """The affine LayerNorms over exactly the family's features: its removal is exact through them."""
    return {
        s.module
        for s in family.slices
        if isinstance(norm := model.get_submodule(s.module), nn.LayerNorm) and norm.weight is not None
    }


def find_groups(
    model: nn.Module,
    example_inputs: Any,
    *,
    include: Sequence[LayerSelector] | None = None,
    exclude: Sequence[LayerSelector] = (),
    graph: tp.DependencyGraph | None = None,
) -> list[NeuronGroups]:
    """The neuron/channel groups of every prunable layer, output layers left out, and attention heads.

    A layer whose outputs feed no other prunable layer (the classifier's output layer) is never a group.
    Channels tied by a residual add come as one :class:`NeuronGroups` listing all the layers that feed it.
    Each ``nn.MultiheadAttention`` gives a family of heads named ``"<layer>:heads"``. Which layer kinds
    are grouped, and how, is in :mod:`lightning_compress.surgery.layer_kinds`.

    Args:
        model: The network.
        example_inputs: An input for tracing (a batch of one is enough).
        include: Keep only groups with a layer matching one of these name patterns (``fnmatch``) or types.
        exclude: Drop groups with a layer matching one of these.
        graph: A dependency graph already built for ``model``.

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> groups = find_groups(LeNet300100(), torch.zeros(1, 1, 28, 28))
        >>> [(g.name, g.num_groups) for g in groups]
        [('1', 300), ('3', 100)]
    """
    validate_selectors(model, list(include or []), "include")
    validate_selectors(model, exclude, "exclude")
    dg = graph if graph is not None else build_dependency_graph(model, example_inputs)
    names = {m: n for n, m in model.named_modules()}
    unwrapped = {
        p: (dg._param_to_name[p], dim) for p, dim in dg.unwrapped_parameters if p in dg._param_to_name
    }
    families: list[NeuronGroups] = []
    for group in dg.get_all_groups(root_module_types=(nn.Linear, nn.modules.conv._ConvNd)):
        slices: list[Slice] = []
        producers: list[str] = []
        has_consumer = False
        try:
            for item in group:
                layer, fn = item.dep.layer, item.dep.pruning_fn
                if isinstance(layer, nn.Parameter) and layer in unwrapped:  # a raw parameter (position table)
                    owner, _, attr = unwrapped[layer][0].rpartition(".")
                    index, root = _as_index(
                        list(item.idxs), list(item.root_idxs), layer.shape[unwrapped[layer][1]]
                    )
                    slices.append(Slice(owner, attr, unwrapped[layer][1], index, root, incoming=True))
                    continue
                if not isinstance(layer, nn.Module) or layer not in names:
                    continue
                if isinstance(layer, nn.MultiheadAttention):  # reads and writes the family's width
                    has_consumer = True
                    producers.append(names[layer])
                    for side in (False, True):  # one item for both: it writes the width and reads it
                        slices.extend(
                            _slices_of(layer, names[layer], side, list(item.idxs), list(item.root_idxs))
                        )
                    continue
                # Norms and depthwise convs have one function for both directions: they go with the producer.
                outgoing = not isinstance(layer, _NORMS) and not is_depthwise(layer)
                outgoing &= not dg.is_out_channel_pruning_fn(fn)
                has_consumer |= outgoing
                name = names[layer]
                if not outgoing and isinstance(layer, (nn.Linear, nn.modules.conv._ConvNd)):
                    producers.append(name)
                slices.extend(_slices_of(layer, name, outgoing, list(item.idxs), list(item.root_idxs)))
        except NotGroupable as why:
            warnings.warn(f"{why}: the channels of {names[group[0].dep.target.module]!r} stay", stacklevel=2)
            continue
        if not has_consumer or not producers:
            continue  # an output layer: its neurons are the model's outputs
        layers = [model.get_submodule(n) for n in producers]
        if include and not any(matches(n, m, include) for n, m in zip(producers, layers, strict=True)):
            continue
        if any(matches(n, m, exclude) for n, m in zip(producers, layers, strict=True)):
            continue
        root = names[group[0].dep.target.module]
        blocks = math.lcm(*(channel_blocks(m) for m in layers))
        families.append(NeuronGroups(root, len(group[0].idxs), slices, sorted(set(producers)), blocks))
    exact = {p: _own_layer_norms(model, f) for f in families for p in f.layers}
    inexact = layers_feeding_feature_norms(model, set(exact), example_inputs, exact=exact)
    for family in [f for f in families if any(p in inexact for p in f.layers)]:
        feeding = next(p for p in family.layers if p in inexact)
        warnings.warn(
            f"the neurons of {feeding!r} are not grouped: they reach the feature normalization "
            f"{inexact[feeding]!r}, where removing even an all-zero feature changes every output",
            stacklevel=2,
        )
        families.remove(family)
    from lightning_compress.surgery.attention import hand_head_groups  # both build on this module
    from lightning_compress.surgery.heads import head_groups

    hand, left_out = hand_head_groups(model, example_inputs)
    families = [f for f in families if not any(s.module in left_out for s in f.slices)]
    for family in [*head_groups(model), *hand]:
        attn = model.get_submodule(family.layers[0])
        if (include and not matches(family.layers[0], attn, include)) or matches(
            family.layers[0], attn, exclude
        ):
            continue
        families.append(family)
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    return sorted(families, key=lambda f: order[f.layers[0] if f.name not in order else f.name])
