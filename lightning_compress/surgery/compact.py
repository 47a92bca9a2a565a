"""One call that removes every zero (or near-zero) group of a model: the plain-function API."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lightning_compress._checks import check_choice
from lightning_compress.functional.selection import even_per_block, select_removable
from lightning_compress.functional.sliced import sliced_group_sq_norms
from lightning_compress.surgery.groups import GroupMode, LayerSelector, NeuronGroups, find_groups
from lightning_compress.surgery.inputs import INPUTS_SUFFIX, input_groups, remove_inputs
from lightning_compress.surgery.prune import remove_groups
from lightning_compress.surgery.size import count_params_and_macs

__all__ = [
    "apply_removals",
    "compress_zero_groups",
    "effective_size",
    "group_cost_weights",
    "group_costs",
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


def effective_size(model: nn.Module, example_inputs: Any, **options: Any) -> dict[str, int]:
    """Parameters and MACs the model would have after :func:`compress_zero_groups` (taken on a copy).

    ``options`` are :func:`compress_zero_groups`'s (thresholds, ``min_width``, ``include``, ``input_layers``...).

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> model = LeNet300100(hidden=(6, 4))
        >>> with torch.no_grad():
        ...     model[1].weight[:3] = 0; model[1].bias[:3] = 0
        >>> effective_size(model, torch.zeros(1, 1, 28, 28))["params"] < sum(p.numel() for p in model.parameters())
        True
    """
    clone = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compress_zero_groups(clone, example_inputs, **{**options, "fold_constants": False})
    params, macs = count_params_and_macs(clone, example_inputs)
    return {"params": params, "macs": macs}


def group_costs(
    model: nn.Module, families: Sequence[NeuronGroups], example_inputs: Any
) -> dict[str, dict[str, int]]:
    """Parameters and MACs that removing one group of each family saves, by root layer name.

    Measured, not modelled: one group is removed from a copy of the model, a family at a time, and the
    copy counted, so coupled slices, residual ties and spatial sizes are all accounted for. Families of a
    single group (which cannot be removed) and input-feature families are left out.

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> model = LeNet300100(hidden=(6, 4)); x = torch.zeros(1, 1, 28, 28)
        >>> group_costs(model, find_groups(model, x), x)
        {'1': {'params': 789, 'macs': 790}, '3': {'params': 17, 'macs': 18}}
    """
    params, macs = count_params_and_macs(model, example_inputs)
    costs: dict[str, dict[str, int]] = {}
    for family in families:
        if family.num_groups < 2 or family.name.endswith(INPUTS_SUFFIX):
            continue
        clone = copy.deepcopy(model)
        remove_groups(clone, families, {family.name: [0]}, example_inputs, fold_constants=False)
        p, m = count_params_and_macs(clone, example_inputs)
        costs[family.name] = {"params": params - p, "macs": macs - m}
    return costs


def group_cost_weights(
    model: nn.Module, families: Sequence[NeuronGroups], example_inputs: Any, exponent: float = 1.0
) -> dict[str, float]:
    """Per family: [(MACs / params one group's removal saves) / (MACs / params of the model)] ** exponent.

    A multiplier for a group lasso weight: above 1 where a group is compute-heavy for its size (a conv
    channel on a large feature map), below 1 for fully connected neurons. Input-feature families (pixel
    columns of a Linear: one MAC per parameter) are under the key ``INPUTS_SUFFIX``.

    Example:
        >>> from lightning_compress.models import LeNet5
        >>> model = LeNet5(); x = torch.zeros(1, 1, 28, 28)
        >>> {k: round(v, 2) for k, v in group_cost_weights(model, find_groups(model, x), x).items()}
        {'features.0': 13.89, 'features.3': 0.87, 'classifier.1': 0.18, ':inputs': 0.18}
    """
    params, macs = count_params_and_macs(model, example_inputs)
    base = macs / max(params, 1)
    weights = {
        name: c["macs"] / c["params"] / base
        for name, c in group_costs(model, families, example_inputs).items()
        if c["params"] > 0
    }
    weights[INPUTS_SUFFIX] = 1.0 / base
    return {name: w**exponent for name, w in weights.items()}
