"""Point an optimizer at a model's new parameters after surgery, carrying its state over."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

__all__ = ["StateFn", "fresh_state", "rebind_by_name", "rebind_optimizer", "slice_state"]

StateFn = Callable[[str, torch.Tensor, nn.Parameter, nn.Parameter], torch.Tensor | None]
"""``state_fn(key, value, old, new)``: the new parameter's state entry ``key`` (e.g. ``"exp_avg"``) made
from the old parameter's, or ``None`` to leave the entry out. Only tensor entries shaped like the old
parameter are passed; scalars and the step count are carried as they are."""


def fresh_state(key: str, value: torch.Tensor, old: nn.Parameter, new: nn.Parameter) -> None:
    """A :data:`StateFn` that starts the new parameter's state afresh (the optimizer re-initializes it).

    Example:
        >>> p = nn.Parameter(torch.zeros(2))
        >>> fresh_state("exp_avg", torch.ones(2), p, p) is None
        True
    """
    return None


def slice_state(kept: Mapping[int, torch.Tensor]) -> StateFn:
    """A :data:`StateFn` that keeps the indices ``kept[dim]`` along each changed dimension (pruning).

    Example:
        >>> fn = slice_state({0: torch.tensor([0, 2])})
        >>> p = nn.Parameter(torch.zeros(3, 2))
        >>> fn("exp_avg", torch.arange(6.0).reshape(3, 2), p, p).tolist()
        [[0.0, 1.0], [4.0, 5.0]]
    """

    def fn(key: str, value: torch.Tensor, old: nn.Parameter, new: nn.Parameter) -> torch.Tensor:
        for dim, index in kept.items():
            value = value.index_select(dim, index.to(value.device))
        return value.contiguous()

    return fn


def _carry(
    state: dict[str, object], old: nn.Parameter, new: nn.Parameter, fn: StateFn
) -> dict[str, object] | None:
    out: dict[str, object] = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.shape == old.shape and value.ndim > 0:
            moved = fn(key, value, old, new)
            if moved is None:
                return None  # one moment started afresh: start them all (Adam needs them consistent)
            out[key] = moved
        else:
            out[key] = value.clone() if isinstance(value, torch.Tensor) else value
    return out


def rebind_optimizer(
    optimizer: torch.optim.Optimizer,
    replaced: Mapping[nn.Parameter, Sequence[tuple[nn.Parameter, StateFn]]],
) -> None:
    """Replace, in place, each old parameter of ``optimizer`` by the new parameters it became.

    The optimizer object stays the same, so LR schedulers, hooks and wrappers that hold it keep working.
    The new parameters join the old one's param group (its learning rate, weight decay, ...) in its
    place. Each new parameter's state is made by its ``state_fn`` from the old state: sliced for a
    pruned tensor (:func:`slice_state`), started afresh (:func:`fresh_state`, or a function returning
    ``None``) for a tensor of a new shape, such as the two factors of a split layer. An old parameter
    mapped to an empty list is dropped with its state.

    Args:
        optimizer: Any ``torch.optim`` optimizer.
        replaced: Old parameter -> ``[(new_parameter, state_fn), ...]``. Parameters not in it are kept.

    Example:
        >>> layer = nn.Linear(3, 4)
        >>> opt = torch.optim.Adam(layer.parameters())
        >>> layer(torch.ones(1, 3)).sum().backward(); opt.step()
        >>> old = layer.weight
        >>> a, b = nn.Parameter(torch.randn(2, 3)), nn.Parameter(torch.randn(4, 2))  # W ~ b @ a
        >>> rebind_optimizer(opt, {old: [(a, fresh_state), (b, fresh_state)]})
        >>> [tuple(p.shape) for p in opt.param_groups[0]["params"]], a in opt.state
        ([(2, 3), (4, 2), (4,)], False)
    """
    for group in optimizer.param_groups:
        updated: list[nn.Parameter] = []
        for param in group["params"]:
            if param not in replaced:
                updated.append(param)
                continue
            state = optimizer.state.pop(param, None)
            for new, fn in replaced[param]:
                carried = _carry(state, param, new, fn) if state else None
                if carried is not None:
                    optimizer.state[new] = carried
                updated.append(new)
        group["params"] = updated


def rebind_by_name(
    optimizer: torch.optim.Optimizer,
    old_params: Mapping[str, nn.Parameter],
    new_params: Mapping[str, nn.Parameter],
    kept: Mapping[str, Mapping[int, torch.Tensor]],
) -> None:
    """:func:`rebind_optimizer` for surgery that keeps parameter names: each old parameter becomes its
    namesake, its state sliced to ``kept[name]`` (dim -> surviving indices); a name that disappeared is
    dropped. Parameters that did not change are left alone.

    Example:
        >>> layer = nn.Linear(3, 4)
        >>> opt = torch.optim.Adam(layer.parameters())
        >>> layer(torch.ones(1, 3)).sum().backward(); opt.step()
        >>> old = dict(layer.named_parameters())
        >>> keep = torch.tensor([0, 2])
        >>> layer.weight = nn.Parameter(layer.weight.data[keep]); layer.bias = nn.Parameter(layer.bias.data[keep])
        >>> rebind_by_name(opt, old, dict(layer.named_parameters()), {"weight": {0: keep}, "bias": {0: keep}})
        >>> opt.state[layer.weight]["exp_avg"].shape
        torch.Size([2, 3])
    """
    replaced: dict[nn.Parameter, list[tuple[nn.Parameter, StateFn]]] = {}
    for name, old in old_params.items():
        new = new_params.get(name)
        if new is None:
            replaced[old] = []
        elif new is not old:
            replaced[old] = [(new, slice_state(kept.get(name, {})))]
    rebind_optimizer(optimizer, replaced)
