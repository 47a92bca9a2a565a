"""Physically remove neuron/channel groups with Torch-Pruning, folding constant outputs into the next bias."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from lightning_compress.surgery.base import is_conv1d
from lightning_compress.surgery.base.activations import capture_inputs
from lightning_compress.surgery.base.records import append_history
from lightning_compress.surgery.base.tracing import build_dependency_graph
from lightning_compress.surgery.groups import HEADS_SUFFIX, NeuronGroups
from lightning_compress.surgery.removal.heads import remove_heads
from lightning_compress.surgery.removal.optimizer import rebind_by_name
from lightning_compress.surgery.removal.width import is_width_family, remove_width

__all__ = ["remove_groups", "replay_prune"]

log = logging.getLogger(__name__)


@torch.no_grad()
def _fold_constants(
    model: nn.Module,
    families: Sequence[NeuronGroups],
    remove: Mapping[str, torch.Tensor],
    example_inputs: Any,
) -> None:
    """Add the constant output of neurons about to be removed to their consumers' biases.

    A removed neuron with zero incoming weights still emits ``act(bias)``; its consumers saw that constant
    through their input weights. It is read off a forward pass (the value does not depend on the input)
    and folded into the consumer's bias: exact for Linear consumers, exact away from the borders for a
    padded convolution.
    """
    outgoing = [(f, s) for f in families if f.name in remove for s in f.slices if not s.incoming]
    if not outgoing:
        return
    inputs = capture_inputs(model, [s.module for _, s in outgoing], example_inputs)
    for family, sl in outgoing:
        layer = model.get_submodule(sl.module)
        pos = family.positions(sl, remove[family.name])
        x = inputs[sl.module][:1]
        if isinstance(layer, nn.Linear) or is_conv1d(layer):  # features last, whatever the leading dimensions
            const = x.reshape(-1, x.shape[-1])[0, pos]
        else:  # channels first: the mean over positions (exact away from a padded border)
            const = x[0, pos].reshape(len(pos), -1).mean(1)
        if const.abs().max() == 0:
            continue
        weight, bias = getattr(layer, "weight", None), getattr(layer, "bias", None)
        if not isinstance(weight, torch.Tensor) or not isinstance(bias, torch.Tensor):
            log.warning("layer %r has no bias: the constant output of removed inputs is dropped", sl.module)
            continue
        kept_w = weight.index_select(1, pos.to(weight.device)) if not is_conv1d(layer) else weight[pos].T
        bias.add_(kept_w.reshape(kept_w.shape[0], len(pos), -1).sum(2) @ const.to(weight.dtype))


def _prune_with_graph(model: nn.Module, graph: Any, name: str, idxs: Sequence[int]) -> Any:
    layer = model.get_submodule(name)
    pruner = graph.get_pruner_of_module(layer)
    group = graph.get_pruning_group(layer, pruner.prune_out_channels, idxs=list(idxs))
    group.prune(record_history=False)
    return group


def replay_prune(model: nn.Module, record: dict[str, Any], example_inputs: Any) -> None:
    """Replay a ``{"kind": "prune", "module": NAME, "idxs": [...]}`` record (shapes only, no folding)."""
    graph = build_dependency_graph(model, example_inputs)
    _prune_with_graph(model, graph, record["module"], record["idxs"])


def remove_groups(
    model: nn.Module,
    families: Sequence[NeuronGroups],
    remove: Mapping[str, torch.Tensor | Sequence[int]],
    example_inputs: Any,
    *,
    optimizers: Sequence[torch.optim.Optimizer] = (),
    fold_constants: bool = True,
) -> list[dict[str, Any]]:
    """Remove groups from ``model`` in place, rebind ``optimizers``, and record the change in its history.

    Args:
        model: The network (the same object whose groups were found).
        families: From :func:`~lightning_compress.surgery.find_groups` on this model.
        remove: Root layer name -> group indices to remove.
        example_inputs: An input for tracing.
        optimizers: Optimizers over the model's parameters: they are pointed at the new parameters with
            their state (momentum, Adam moments) sliced to the survivors.
        fold_constants: Fold the constant output of removed neurons into the consumers' biases.

    Returns:
        The history records appended.

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> from lightning_compress.surgery.groups import find_groups
        >>> model = LeNet300100(hidden=(8, 4)); x = torch.zeros(1, 1, 28, 28)
        >>> records = remove_groups(model, find_groups(model, x), {"1": [0, 5]}, x)
        >>> model[1].out_features, model[3].in_features, records
        (6, 6, [{'kind': 'prune', 'module': '1', 'idxs': [0, 5]}])
    """
    by_name = {f.name: f for f in families}
    todo: dict[str, torch.Tensor] = {}
    for name, idxs in remove.items():
        if name not in by_name:
            raise ValueError(f"{name!r} is not the root of any group; roots are {sorted(by_name)}")
        index = torch.as_tensor(list(idxs) if not isinstance(idxs, torch.Tensor) else idxs, dtype=torch.long)
        if len(index):
            todo[name] = torch.unique(index)
    heads = {name: todo.pop(name) for name in [n for n in todo if n.endswith(HEADS_SUFFIX)]}
    width = {name: todo.pop(name) for name in [n for n in todo if is_width_family(model, by_name[n])]}
    records = _remove_channels(model, families, todo, example_inputs, optimizers, fold_constants)
    for name, index in width.items():  # slices only: the families stay valid through it
        records += remove_width(model, by_name[name], index, optimizers=optimizers)
    for name, index in heads.items():
        records += remove_heads(
            model, by_name[name].layers[0], index, optimizers=optimizers, fold_constants=fold_constants
        )
    return records


def _remove_channels(
    model: nn.Module,
    families: Sequence[NeuronGroups],
    todo: dict[str, torch.Tensor],
    example_inputs: Any,
    optimizers: Sequence[torch.optim.Optimizer],
    fold_constants: bool,
) -> list[dict[str, Any]]:
    if not todo:
        return []
    if fold_constants:
        _fold_constants(model, families, todo, example_inputs)
    old_params = dict(model.named_parameters())
    shapes = {n: p.shape for n, p in old_params.items()}
    graph = build_dependency_graph(model, example_inputs)
    by_name = {f.name: f for f in families}
    kept: dict[str, dict[int, torch.Tensor]] = {}  # the optimizer state to keep, from the families' slices
    records = []
    for name, index in todo.items():
        family = by_name[name]
        for sl in family.slices:
            full = f"{sl.module}.{sl.param}" if sl.module else sl.param
            gone = set(family.positions(sl, index).tolist())
            size = shapes[full][sl.dim]
            kept.setdefault(full, {})[sl.dim] = torch.tensor([i for i in range(size) if i not in gone])
        _prune_with_graph(model, graph, name, index.tolist())
        records.append({"kind": "prune", "module": name, "idxs": index.tolist()})
    new_params = dict(model.named_parameters())
    for optimizer in optimizers:
        rebind_by_name(optimizer, old_params, new_params, kept)
    append_history(model, records)
    return records
