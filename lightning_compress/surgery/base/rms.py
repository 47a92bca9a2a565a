"""RMS normalizations over the last dimension (``nn.RMSNorm``, Llama's ``LlamaRMSNorm`` and the like).

They are recognized by what they compute, ``x * rsqrt(mean(x**2) + eps) * weight``, tried on a random
input (each library has its own class). :data:`RMS_NORM_PRUNER` tells Torch-Pruning that their ``weight``
follows the channels they normalize.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch_pruning as tp
from torch import nn

__all__ = ["RMS_NORM_PRUNER", "rms_norm_eps", "rms_norm_types"]


def _candidates(module: nn.Module, dtype: torch.dtype) -> list[float]:
    """The ``eps`` values to try: the module's own (``eps``, ``variance_epsilon``), then the usual ones."""
    own = [v for a in ("eps", "variance_epsilon") if isinstance(v := getattr(module, a, None), float)]
    return [*own, float(torch.finfo(dtype).eps), 1e-5, 1e-6, 1e-8, 1e-12]


def rms_norm_eps(module: nn.Module) -> float | None:
    """The ``eps`` of an RMS normalization over the last dimension with a 1-d ``weight`` (and nothing
    else learned), or ``None`` for any other module.

    Example:
        >>> rms_norm_eps(nn.RMSNorm(4, eps=1e-6)), rms_norm_eps(nn.LayerNorm(4))
        (1e-06, None)
    """
    params = dict(module.named_parameters(recurse=False))
    weight = params.get("weight")
    if (
        set(params) != {"weight"}
        or weight is None
        or weight.dim() != 1
        or any(True for _ in module.children())
    ):
        return None
    candidates = _candidates(module, weight.dtype)
    if isinstance(getattr(module, "full_width", None), int):  # one already cut, that keeps its divisor
        return candidates[0]
    gen = torch.Generator(device=weight.device).manual_seed(0)
    x = torch.randn(2, 3, weight.shape[0], generator=gen, device=weight.device, dtype=weight.dtype)
    small = x * 1e-3  # mean square 1e-6: the eps shows
    try:
        with torch.no_grad():
            y, ys = module(x), module(small)
    except Exception:  # the user's forward code: any failure says it is not one
        return None
    if not isinstance(y, torch.Tensor) or not isinstance(ys, torch.Tensor) or y.shape != x.shape:
        return None
    for eps in candidates:
        if torch.allclose(y, _rms(x, eps, weight), atol=1e-5) and torch.allclose(
            ys, _rms(small, eps, weight), rtol=1e-3, atol=1e-6
        ):
            return eps
    return None


def _rms(x: torch.Tensor, eps: float, weight: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rms_norm_types(model: nn.Module) -> set[type[nn.Module]]:
    """The RMS normalization classes used in ``model``."""
    return {type(m) for m in model.modules() if rms_norm_eps(m) is not None}


class RMSNormPruner(tp.pruner.BasePruningFunc):
    """Torch-Pruning's pruning function for an RMS normalization: ``weight`` follows its channels."""

    TARGET_MODULES = None

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        weight: torch.Tensor = layer.weight  # type: ignore[assignment]
        gone = {int(i) for i in idxs}
        keep = torch.tensor([i for i in range(weight.shape[0]) if i not in gone], device=weight.device)
        layer.weight = nn.Parameter(weight.data.index_select(0, keep))
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int:
        weight: torch.Tensor = layer.weight  # type: ignore[assignment]
        return int(weight.shape[0])

    get_in_channels = get_out_channels


RMS_NORM_PRUNER = RMSNormPruner()
