"""GPT-2's ``Conv1D`` (Hugging Face): a Linear whose weight is stored transposed, ``(in, out)``.

Torch-Pruning does not know it; :data:`CONV1D_PRUNER` tells it where the channels are, and
:func:`is_conv1d` recognizes the layer by its shape (the class lives in ``transformers``, which this
library does not import).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch_pruning as tp
from torch import nn

__all__ = ["CONV1D_PRUNER", "Conv1DPruner", "conv1d_types", "is_conv1d"]


def is_conv1d(module: nn.Module) -> bool:
    """A module named ``Conv1D`` with a 2-d ``(nx, nf)`` weight, as ``transformers``' GPT-2 layers.

    Example:
        >>> class Conv1D(nn.Module):
        ...     def __init__(self, nf, nx):
        ...         super().__init__()
        ...         self.nf, self.nx = nf, nx
        ...         self.weight, self.bias = nn.Parameter(torch.zeros(nx, nf)), nn.Parameter(torch.zeros(nf))
        >>> is_conv1d(Conv1D(4, 3)), is_conv1d(nn.Linear(3, 4))
        (True, False)
    """
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__ == "Conv1D"
        and isinstance(weight, torch.Tensor)
        and weight.dim() == 2
        and isinstance(getattr(module, "nf", None), int)
    )


def conv1d_types(model: nn.Module) -> set[type[nn.Module]]:
    """The ``Conv1D`` classes used in ``model``."""
    return {type(m) for m in model.modules() if is_conv1d(m)}


class Conv1DPruner(tp.pruner.BasePruningFunc):
    """Torch-Pruning's pruning function for ``Conv1D``: outputs are weight columns, inputs its rows."""

    TARGET_MODULES = None

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        weight: torch.Tensor = layer.weight  # type: ignore[assignment]
        keep = _kept(int(weight.shape[1]), idxs, weight.device)
        layer.weight = nn.Parameter(weight.data.index_select(1, keep))
        if isinstance(bias := layer.bias, torch.Tensor):
            layer.bias = nn.Parameter(bias.data.index_select(0, keep))
        vars(layer)["nf"] = len(keep)
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        weight: torch.Tensor = layer.weight  # type: ignore[assignment]
        keep = _kept(int(weight.shape[0]), idxs, weight.device)
        layer.weight = nn.Parameter(weight.data.index_select(0, keep))
        if "nx" in vars(layer):
            vars(layer)["nx"] = len(keep)
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        weight: torch.Tensor = layer.weight  # type: ignore[assignment]
        return int(weight.shape[1])

    def get_in_channels(self, layer: nn.Module) -> int:
        weight: torch.Tensor = layer.weight  # type: ignore[assignment]
        return int(weight.shape[0])


def _kept(size: int, idxs: Sequence[int], device: torch.device) -> torch.Tensor:
    gone = set(int(i) for i in idxs)
    return torch.tensor([i for i in range(size) if i not in gone], dtype=torch.long, device=device)


CONV1D_PRUNER = Conv1DPruner()
