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
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from lightning_compress._compat import parameter_names
from lightning_compress.functional.sliced import GroupPiece
from lightning_compress.surgery.base.conv1d import is_conv1d
from lightning_compress.surgery.base.rms import rms_norm_eps
from lightning_compress.surgery.groups.layer_kinds import (
    NORMS,
    NotGroupable,
    channel_blocks,
    is_depthwise,
    param_specs,
)
from lightning_compress.surgery.groups.norms import channels_first_layer_norm, layers_feeding_feature_norms
from lightning_compress.surgery.groups.walk import settled_groups

__all__ = [
    "GROUP_MODES",
    "GroupMode",
    "GroupModeName",
    "NeuronGroups",
    "Slice",
    "channel_families",
    "without_inexact_norms",
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
        >>> from lightning_compress.surgery.base import build_dependency_graph
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> family = channel_families(model, build_dependency_graph(model, torch.zeros(1, 3)))[0]
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


def last_dim_layer_norm(module: nn.Module) -> bool:
    """An affine LayerNorm over the last dimension, as ``nn.LayerNorm`` computes it (or a width-free one,
    which keeps its original divisor). A subclass with its own ``forward`` is tried on a random input
    against ``F.layer_norm``: a channels-first ``LayerNorm2d`` normalizes another dimension and is not one.

    Example:
        >>> class LayerNorm2d(nn.LayerNorm):
        ...     def forward(self, x):
        ...         return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        >>> last_dim_layer_norm(nn.LayerNorm(4)), last_dim_layer_norm(LayerNorm2d(4))
        (True, False)
    """
    if not isinstance(module, nn.LayerNorm) or module.weight is None or len(module.normalized_shape) != 1:
        return False
    if type(module).forward is nn.LayerNorm.forward or hasattr(module, "full_width"):
        return True
    weight = module.weight
    gen = torch.Generator(device=weight.device).manual_seed(0)
    x = torch.randn(2, 3, module.normalized_shape[0], generator=gen, device=weight.device, dtype=weight.dtype)
    try:
        with torch.no_grad():
            y = module(x)
    except Exception:  # the user's forward code: any failure says it is not a last-dimension norm
        return False
    expected = F.layer_norm(x, module.normalized_shape, module.weight, module.bias, module.eps)
    return isinstance(y, torch.Tensor) and y.shape == x.shape and bool(torch.allclose(y, expected, atol=1e-5))


def _own_layer_norms(model: nn.Module, family: NeuronGroups) -> set[str]:
    """The affine LayerNorms over exactly the family's features: its removal is exact through them."""
    return {
        s.module
        for s in family.slices
        if last_dim_layer_norm(layer := model.get_submodule(s.module))
        or channels_first_layer_norm(layer)
        or rms_norm_eps(layer) is not None
    }


def channel_families(
    model: nn.Module, dg: tp.DependencyGraph, skip: Collection[str] = ()
) -> list[NeuronGroups]:
    """Step 1 of :func:`~lightning_compress.surgery.groups.find_groups`: the graph walk.

    One family per Torch-Pruning group rooted at a Linear or conv whose outputs feed another layer (the
    output layer's neurons are the model's outputs and are never a family), with every coupled slice:
    the producers' rows, norms and depthwise convs, the consumers' columns, raw parameters such as
    position tables, and ``nn.MultiheadAttention``'s reads and writes of the width. A group with a layer
    kind that cannot be sliced exactly is left out with a warning. No group is rooted at the layers named
    in ``skip`` (attention's q/k/v projections, whose unit is the head).

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> from lightning_compress.surgery.base import build_dependency_graph
        >>> model, x = LeNet300100(), torch.zeros(1, 1, 28, 28)
        >>> sorted((f.name, f.num_groups) for f in channel_families(model, build_dependency_graph(model, x)))
        [('1', 300), ('3', 100)]
    """
    names = {m: n for n, m in model.named_modules()}
    param_names = parameter_names(dg)
    unwrapped = {p: (param_names[p], dim) for p, dim in dg.unwrapped_parameters if p in param_names}
    families: list[NeuronGroups] = []
    for group in settled_groups(dg, names, set(skip)):
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
                norm = isinstance(layer, _NORMS) or rms_norm_eps(layer) is not None
                outgoing = not norm and not is_depthwise(layer)
                outgoing &= not dg.is_out_channel_pruning_fn(fn)
                has_consumer |= outgoing
                name = names[layer]
                if not outgoing and (
                    isinstance(layer, (nn.Linear, nn.modules.conv._ConvNd)) or is_conv1d(layer)
                ):
                    producers.append(name)
                slices.extend(_slices_of(layer, name, outgoing, list(item.idxs), list(item.root_idxs)))
        except NotGroupable as why:
            warnings.warn(f"{why}: the channels of {names[group[0].dep.target.module]!r} stay", stacklevel=3)
            continue
        if not has_consumer or not producers:
            continue  # an output layer: its neurons are the model's outputs
        layers = [model.get_submodule(n) for n in producers]
        root = names[group[0].dep.target.module]
        blocks = math.lcm(*(channel_blocks(m) for m in layers))
        families.append(NeuronGroups(root, len(group[0].idxs), slices, sorted(set(producers)), blocks))
    return families


def without_inexact_norms(
    model: nn.Module, families: list[NeuronGroups], example_inputs: Any
) -> list[NeuronGroups]:
    """Step 2: drop the families whose features reach a feature normalization (GroupNorm, RMSNorm, ...)
    that is not exactly theirs, where removing even an all-zero feature changes every output; one warning
    each. A LayerNorm over exactly a family's features is exact (it keeps its divisor)."""
    exact = {p: _own_layer_norms(model, f) for f in families for p in f.layers}
    inexact = layers_feeding_feature_norms(model, set(exact), example_inputs, exact=exact)
    kept = []
    for family in families:
        feeding = next((p for p in family.layers if p in inexact), None)
        if feeding is None:
            kept.append(family)
            continue
        warnings.warn(
            f"the neurons of {feeding!r} are not grouped: they reach the feature normalization "
            f"{inexact[feeding]!r}, where removing even an all-zero feature changes every output",
            stacklevel=3,
        )
    return kept
