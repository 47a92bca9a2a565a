"""The size a model would have after removals, and what removing one group of each family saves."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any

from torch import nn

from lightning_compress.surgery.groups import NeuronGroups
from lightning_compress.surgery.measure.size import count_params_and_macs
from lightning_compress.surgery.removal import INPUTS_SUFFIX, compress_zero_groups, remove_groups

__all__ = ["effective_size", "group_cost_weights", "group_costs"]


def effective_size(model: nn.Module, example_inputs: Any, **options: Any) -> dict[str, int]:
    """Parameters and MACs the model would have after :func:`compress_zero_groups` (taken on a copy).

    ``options`` are :func:`compress_zero_groups`'s (thresholds, ``min_width``, ``include``, ``input_layers``...).

    Example:
        >>> import torch
        >>> from lightning_compress.surgery.groups import find_groups
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
        >>> import torch
        >>> from lightning_compress.surgery.groups import find_groups
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
        >>> import torch
        >>> from lightning_compress.surgery.groups import find_groups
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
