"""Input features as groups: a first layer's input columns (pixels), and their physical removal.

Group lasso on the columns of the first ``Linear`` zeroes whole input features; removing them shrinks
that layer (often the largest) in a way channel pruning cannot. The layer is replaced, at the same module
path, by :class:`InputSelectLinear`: a ``Linear`` over the kept features that gathers them from the full
input, so the model still takes the original input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from lightning_compress.surgery.base.records import append_history
from lightning_compress.surgery.groups import NeuronGroups, Slice, is_factorized
from lightning_compress.surgery.removal.optimizer import rebind_by_name

__all__ = [
    "INPUTS_SUFFIX",
    "InputSelectLinear",
    "count_input_select_macs",
    "input_groups",
    "remove_inputs",
    "replay_select_inputs",
]

INPUTS_SUFFIX = ":inputs"


class InputSelectLinear(nn.Linear):
    """``Linear`` applied to ``x[..., input_index]``: the input features that survived pruning.

    Example:
        >>> layer = InputSelectLinear(2, 1, torch.tensor([0, 3]))
        >>> with torch.no_grad():
        ...     _ = layer.weight.fill_(1.0); _ = layer.bias.zero_()
        >>> layer(torch.tensor([[1.0, 10.0, 100.0, 2.0]]))
        tensor([[3.]], grad_fn=<AddmmBackward0>)
    """

    def __init__(
        self, in_features: int, out_features: int, input_index: torch.Tensor, bias: bool = True
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("input_index", input_index.to(torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.index_select(-1, self.get_buffer("input_index")))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, selected inputs"


def count_input_select_macs(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
    """MACs of :class:`InputSelectLinear`: only the selected features are multiplied (the gather is free)."""
    if not isinstance(module, InputSelectLinear):
        raise TypeError(f"expected an InputSelectLinear, got {type(module).__name__}")
    rows = int(inputs[0].numel() // inputs[0].shape[-1])
    bias = module.out_features if module.bias is not None else 0
    flops = rows * module.in_features * module.out_features + bias
    vars(module)["__flops__"] = int(getattr(module, "__flops__", 0)) + flops  # Torch-Pruning's protocol


def _linear(model: nn.Module, name: str) -> tuple[str, nn.Linear]:
    """The Linear layer whose input features ``name`` means, and its name: after a low-rank split of
    ``name``, the first of its two thin layers."""

    try:
        layer = model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"input_layers entry {name!r} is not a layer of the model") from None
    if is_factorized(layer) and isinstance(first := cast(nn.Sequential, layer)[0], nn.Linear):
        name, layer = f"{name}.0", first
    if not isinstance(layer, nn.Linear):
        raise ValueError(
            f"input features can be grouped for Linear layers only; {name!r} is {type(layer).__name__}"
        )
    return name, layer


def input_groups(model: nn.Module, name: str) -> NeuronGroups:
    """One group per input feature (weight column) of the Linear layer ``name``.

    Example:
        >>> g = input_groups(nn.Sequential(nn.Flatten(), nn.Linear(784, 30)), "1")
        >>> g.name, g.num_groups
        ('1:inputs', 784)
    """
    target, layer = _linear(model, name)
    return NeuronGroups(
        f"{name}{INPUTS_SUFFIX}", layer.in_features, [Slice(target, "weight", 1, None, None, True)], [target]
    )


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


@torch.no_grad()
def _select(model: nn.Module, name: str, remove: Sequence[int]) -> tuple[str, dict[int, torch.Tensor]]:
    name, layer = _linear(model, name)
    gone = set(int(i) for i in remove)
    keep = torch.tensor([i for i in range(layer.in_features) if i not in gone], dtype=torch.long)
    if len(keep) == 0:
        raise ValueError(f"removing every input feature of {name!r} is not possible")
    base = torch.arange(layer.in_features)
    if isinstance(layer, InputSelectLinear):
        base = torch.as_tensor(layer.input_index).cpu()
    new = InputSelectLinear(len(keep), layer.out_features, base[keep], bias=layer.bias is not None)
    new = new.to(device=layer.weight.device, dtype=layer.weight.dtype)
    new.weight.copy_(layer.weight[:, keep.to(layer.weight.device)])
    if layer.bias is not None and new.bias is not None:
        new.bias.copy_(layer.bias)
    new.train(layer.training)
    _set_submodule(model, name, new)
    return name, {1: keep}


def replay_select_inputs(model: nn.Module, record: dict[str, Any], example_inputs: Any) -> None:
    """Replay a ``{"kind": "select_inputs", "module": NAME, "idxs": [...]}`` record."""
    _select(model, record["module"], record["idxs"])


def remove_inputs(
    model: nn.Module,
    name: str,
    remove: Sequence[int] | torch.Tensor,
    *,
    optimizers: Sequence[torch.optim.Optimizer] = (),
) -> list[dict[str, Any]]:
    """Remove input features ``remove`` of the Linear layer ``name``; rebind optimizers; record it.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> x = torch.randn(3, 4)
        >>> with torch.no_grad():
        ...     model[1].weight[:, 1] = 0
        >>> before = model(x)
        >>> remove_inputs(model, "1", [1])
        [{'kind': 'select_inputs', 'module': '1', 'idxs': [1]}]
        >>> model[1].in_features, bool(torch.allclose(model(x), before))
        (3, True)
    """
    idxs = sorted({int(i) for i in (remove.tolist() if isinstance(remove, torch.Tensor) else remove)})
    if not idxs:
        return []
    old_params = dict(model.named_parameters())
    target, kept = _select(model, name, idxs)
    new_params = dict(model.named_parameters())
    for optimizer in optimizers:
        rebind_by_name(optimizer, old_params, new_params, {f"{target}.weight": kept})
    record = {"kind": "select_inputs", "module": name, "idxs": idxs}
    append_history(model, [record])
    return [record]
