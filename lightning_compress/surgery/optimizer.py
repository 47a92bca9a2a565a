"""Point an optimizer at a model's new parameters after surgery, carrying its state over."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["rebind_optimizer"]

Kept = Mapping[str, Mapping[int, torch.Tensor]]


def _slice(value: torch.Tensor, old_shape: torch.Size, kept: Mapping[int, torch.Tensor]) -> torch.Tensor:
    if value.shape != old_shape:
        return value  # a scalar or a statistic of another shape: carried as is
    for dim, index in kept.items():
        value = value.index_select(dim, index.to(value.device))
    return value.contiguous()


def rebind_optimizer(
    optimizer: torch.optim.Optimizer,
    old_params: Mapping[str, nn.Parameter],
    new_params: Mapping[str, nn.Parameter],
    kept: Kept,
) -> None:
    """Replace, in place, every old parameter of ``optimizer`` by its new namesake and slice its state.

    The optimizer object stays the same, so LR schedulers, hooks and wrappers that hold it keep working.

    Args:
        optimizer: Any ``torch.optim`` optimizer.
        old_params: Parameters by qualified name before the surgery.
        new_params: Parameters by qualified name after it (``dict(model.named_parameters())``).
        kept: For each changed parameter name, the surviving indices along each changed dimension.
            State tensors shaped like the old parameter (momentum, Adam moments) are sliced the same way.

    Example:
        >>> layer = nn.Linear(3, 4)
        >>> opt = torch.optim.Adam(layer.parameters())
        >>> layer(torch.ones(1, 3)).sum().backward(); opt.step()
        >>> old = dict(layer.named_parameters())
        >>> keep = torch.tensor([0, 2])
        >>> layer.weight = nn.Parameter(layer.weight.data[keep]); layer.bias = nn.Parameter(layer.bias.data[keep])
        >>> rebind_optimizer(opt, old, dict(layer.named_parameters()), {"weight": {0: keep}, "bias": {0: keep}})
        >>> opt.state[layer.weight]["exp_avg"].shape
        torch.Size([2, 3])
    """
    by_id = {id(p): name for name, p in old_params.items()}
    for group in optimizer.param_groups:
        updated = []
        for param in group["params"]:
            name = by_id.get(id(param))
            if name is None or name not in new_params:
                if name is not None:
                    optimizer.state.pop(param, None)  # the parameter was removed outright
                    continue
                updated.append(param)
                continue
            new = new_params[name]
            state = optimizer.state.pop(param, None)
            if state:
                changes = kept.get(name, {})
                optimizer.state[new] = {
                    k: _slice(v, param.shape, changes) if isinstance(v, torch.Tensor) and changes else v
                    for k, v in state.items()
                }
            updated.append(new)
        group["params"] = updated
