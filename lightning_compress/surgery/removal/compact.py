"""One call that removes every zero (or near-zero) group of a model: the plain-function API."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lightning_compress._checks import check_choice
from lightning_compress.functional.selection import even_per_block, select_removable
from lightning_compress.functional.sliced import sliced_group_sq_norms
from lightning_compress.surgery.groups import GroupMode, LayerSelector, NeuronGroups, find_groups
from lightning_compress.surgery.removal.inputs import INPUTS_SUFFIX, input_groups, remove_inputs
from lightning_compress.surgery.removal.prune import remove_groups

__all__ = [
    "apply_removals",
    "compress_zero_groups",
    "group_norms",
    "plan_removals",
    "removable_groups",
]


def group_norms(
    model: nn.Module, families: Sequence[NeuronGroups], mode: str = "incoming"
) -> dict[str, torch.Tensor]:
    """L2 norm of every group, by root layer name.

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
        >>> with torch.no_grad():
        ...     _ = model[0].weight.fill_(1.0); _ = model[0].bias.fill_(2.0)
        >>> group_norms(model, find_groups(model, torch.zeros(1, 2)))
        {'0': tensor([2.4495, 2.4495])}
    """
    check_choice(GroupMode, mode, "mode")
    with torch.no_grad():
        return {f.name: sliced_group_sq_norms(f.pieces(model, mode), f.num_groups).sqrt() for f in families}


def removable_groups(
    model: nn.Module,
    families: Sequence[NeuronGroups],
    *,
    threshold: float = 0.0,
    relative_threshold: float = 0.0,
    min_width: int = 1,
    mode: str = "incoming",
) -> dict[str, torch.Tensor]:
    """Root layer name -> indices of the groups to remove (norm under the threshold, ``min_width`` kept).

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        >>> with torch.no_grad():
        ...     model[0].weight[1] = 1e-6; model[0].bias[1] = 0
        >>> removable_groups(model, find_groups(model, torch.zeros(1, 2)), threshold=1e-4)
        {'0': tensor([1])}
    """
    out: dict[str, torch.Tensor] = {}
    clamped: list[str] = []
    blocks = {f.name: f.blocks for f in families}
    for name, norms in group_norms(model, families, mode).items():
        idx, hit = select_removable(
            norms.cpu(), threshold=threshold, relative_threshold=relative_threshold, min_keep=min_width
        )
        idx = even_per_block(idx, norms.cpu(), blocks[name])
        if hit:
            clamped.append(name)
        if len(idx):
            out[name] = idx
    if clamped:
        warnings.warn(
            f"every group of {', '.join(clamped)} is (near) zero: keeping min_width={min_width} per layer; "
            "the strength is probably too large",
            stacklevel=2,
        )
    return out


def plan_removals(
    model: nn.Module,
    example_inputs: Any,
    *,
    threshold: float = 0.0,
    relative_threshold: float = 0.0,
    min_width: int = 1,
    include: Sequence[LayerSelector] | None = None,
    exclude: Sequence[LayerSelector] = (),
    mode: str = "incoming",
    input_layers: Sequence[str] = (),
) -> tuple[list[NeuronGroups], dict[str, torch.Tensor]]:
    """The decision of :func:`compress_zero_groups` without the surgery: ``(families, remove)``.

    ``remove`` maps a family's root name (``"<layer>:inputs"`` for input features) to the indices of its
    groups whose norm is under the threshold; pass both to :func:`apply_removals`.

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> model = LeNet300100(hidden=(6, 4))
        >>> with torch.no_grad():
        ...     model[3].weight[1:3] = 0; model[3].bias[1:3] = 0
        >>> plan_removals(model, torch.zeros(1, 784))[1]
        {'3': tensor([1, 2])}
    """
    families = find_groups(model, example_inputs, include=include, exclude=exclude)
    families += [input_groups(model, name) for name in input_layers]
    remove = removable_groups(
        model,
        families,
        threshold=threshold,
        relative_threshold=relative_threshold,
        min_width=min_width,
        mode=mode,
    )
    return families, remove


def compress_zero_groups(
    model: nn.Module,
    example_inputs: Any,
    *,
    optimizers: Sequence[torch.optim.Optimizer] = (),
    fold_constants: bool = True,
    **options: Any,
) -> list[dict[str, Any]]:
    """Physically remove every group whose norm is under the threshold; returns the history records.

    ``options`` are :func:`plan_removals`'s: ``threshold``, ``relative_threshold``, ``min_width``,
    ``include``, ``exclude``, ``mode`` and ``input_layers`` (Linear layers whose zero input features,
    columns, are removed too). ``optimizers`` are pointed at the new parameters with their state sliced.

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> model = LeNet300100(hidden=(6, 4)); x = torch.zeros(1, 1, 28, 28)
        >>> with torch.no_grad():
        ...     model[1].weight[:2] = 0; model[1].bias[:2] = 0
        >>> compress_zero_groups(model, x)
        [{'kind': 'prune', 'module': '1', 'idxs': [0, 1]}]
        >>> model[1]
        Linear(in_features=784, out_features=4, bias=True)
    """
    families, remove = plan_removals(model, example_inputs, **options)
    return apply_removals(
        model, families, remove, example_inputs, optimizers=optimizers, fold_constants=fold_constants
    )


def apply_removals(
    model: nn.Module,
    families: Sequence[NeuronGroups],
    remove: dict[str, torch.Tensor],
    example_inputs: Any,
    *,
    optimizers: Sequence[torch.optim.Optimizer] = (),
    fold_constants: bool = True,
) -> list[dict[str, Any]]:
    """Remove neuron groups (with Torch-Pruning) and input features (``"<layer>:inputs"`` families).

    ``remove`` maps a family's root name to the indices of the groups to remove (see
    :func:`plan_removals`); returns the history records appended.

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> model = LeNet300100(hidden=(6, 4)); x = torch.zeros(1, 784)
        >>> apply_removals(model, find_groups(model, x), {"3": torch.tensor([0])}, x)
        [{'kind': 'prune', 'module': '3', 'idxs': [0]}]
    """
    neurons = {k: v for k, v in remove.items() if not k.endswith(INPUTS_SUFFIX)}
    records = remove_groups(
        model,
        [f for f in families if not f.name.endswith(INPUTS_SUFFIX)],
        neurons,
        example_inputs,
        optimizers=optimizers,
        fold_constants=fold_constants,
    )
    for key, idxs in remove.items():
        if key.endswith(INPUTS_SUFFIX):
            records += remove_inputs(model, key[: -len(INPUTS_SUFFIX)], idxs, optimizers=optimizers)
    return records
