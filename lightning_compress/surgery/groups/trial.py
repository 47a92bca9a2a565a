"""A family whose channels reach a layer through a reshape is removed once on a copy before it is trusted.

Torch-Pruning maps channel indices through reshapes and flattens (a conv's channels flattened into a
Linear's inputs); some layouts it maps wrongly (a Swin patch merge concatenates four neighbours channel
last), and the removal would then fail, or worse, only at the next forward. Every family with such a
mapping (a slice holding several positions of one group, or part of a parameter) has its first group cut from a copy of the
model, and is left out with a warning naming the failure when that copy no longer runs as before.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn

from lightning_compress.surgery.groups.core import NeuronGroups
from lightning_compress.surgery.groups.layer_kinds import fit_attributes

__all__ = ["is_mapped", "trial_failure", "without_failed_trials"]


def is_mapped(family: NeuronGroups) -> bool:
    """Whether a slice of ``family`` holds several positions of one group or only part of its parameter
    (an index mapping through a reshape, a concatenation or a split).

    Example:
        >>> from lightning_compress.surgery.groups.core import Slice
        >>> one = Slice("0", "weight", 0, None, None, True)
        >>> flat = Slice("2", "weight", 1, None, torch.arange(8) // 4, False)
        >>> is_mapped(NeuronGroups("0", 2, [one], ["0"])), is_mapped(NeuronGroups("0", 2, [one, flat], ["0"]))
        (False, True)
    """
    return any(
        s.index is not None or (s.root is not None and len(s.root) > len(torch.unique(s.root)))
        for s in family.slices
    )


def _outputs(output: Any) -> list[tuple[int, ...]]:
    if isinstance(output, torch.Tensor):
        return [tuple(output.shape)]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return [s for item in output for s in _outputs(item)]
    return []


def _run(model: nn.Module, inputs: Any) -> list[tuple[int, ...]]:
    with torch.no_grad():
        return _outputs(model(*inputs) if isinstance(inputs, tuple) else model(inputs))


def trial_failure(model: nn.Module, family: NeuronGroups, example_inputs: Any) -> str | None:
    """``None`` when a copy of ``model`` with the family's group 0 sliced away still runs with outputs of
    the same shapes; else what went wrong."""
    trial = copy.deepcopy(model).eval()
    want = _run(trial, example_inputs)
    touched = {}
    with torch.no_grad():
        for sl in family.slices:
            layer = trial.get_submodule(sl.module)
            tensor = getattr(layer, sl.param)
            gone = set(family.positions(sl, torch.tensor([0])).tolist())
            keep = torch.tensor([i for i in range(tensor.shape[sl.dim]) if i not in gone])
            setattr(layer, sl.param, nn.Parameter(tensor.data.index_select(sl.dim, keep)))
            for buf in ("running_mean", "running_var") if sl.param == "weight" else ():
                if isinstance(value := getattr(layer, buf, None), torch.Tensor):
                    setattr(layer, buf, value.index_select(0, keep))
            touched[sl.module] = layer
    for layer in touched.values():
        fit_attributes(layer)
    try:
        got = _run(trial, example_inputs)
    except Exception as err:  # the user's forward code
        return f"{type(err).__name__}: {err}"
    return None if got == want else f"its outputs became {got} from {want}"


def without_failed_trials(
    model: nn.Module, families: list[NeuronGroups], example_inputs: Any
) -> list[NeuronGroups]:
    """Step 3 of :func:`~lightning_compress.surgery.groups.find_groups`: the mapped families
    (:func:`is_mapped`) whose trial removal fails are dropped, one warning each.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3))
        >>> from lightning_compress.surgery.groups import find_groups
        >>> [f.name for f in without_failed_trials(model, find_groups(model, torch.zeros(1, 1, 4, 4)), torch.zeros(1, 1, 4, 4))]
        ['0']
    """
    kept = []
    for family in families:
        if is_mapped(family) and (failure := trial_failure(model, family, example_inputs)) is not None:
            warnings.warn(
                f"the channels of {family.name!r} are not grouped: removing one of them from a copy "
                f"broke its forward ({failure})",
                stacklevel=3,
            )
            continue
        kept.append(family)
    return kept
