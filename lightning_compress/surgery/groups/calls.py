"""The whole call (positional and keyword arguments) a module receives, to call a copy of it again.

Hugging Face attention modules are called with keywords (``hidden_states=``, ``position_embeddings=``,
``attention_mask=``): trying one on its hidden states alone would fail for want of the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lightning_compress.surgery.base.tracing import kept_modes, without_cache

__all__ = ["Call", "capture_calls"]


@dataclass
class Call:
    """The arguments of one call of a module; ``hidden`` is where its first tensor argument sits."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def hidden(self) -> torch.Tensor:
        """The module's main input: its first tensor argument."""
        return next(a for a in (*self.args, *self.kwargs.values()) if isinstance(a, torch.Tensor))

    def __call__(self, module: nn.Module, hidden: torch.Tensor | None = None) -> Any:
        """Call ``module`` with these arguments, the main input replaced by ``hidden`` if given."""
        if hidden is None:
            return module(*self.args, **self.kwargs)
        first = self.hidden
        args = tuple(hidden if a is first else a for a in self.args)
        kwargs = {k: hidden if v is first else v for k, v in self.kwargs.items()}
        return module(*args, **kwargs)


def capture_calls(model: nn.Module, names: Iterable[str], example_inputs: Any) -> dict[str, Call]:
    """The first call each named module receives for ``example_inputs`` (eval mode, no grad).

    Example:
        >>> model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
        >>> capture_calls(model, ["1"], torch.zeros(4, 3))["1"].hidden.shape
        torch.Size([4, 2])
    """
    seen: dict[str, Call] = {}
    handles = []
    for name in set(names):

        def hook(_: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], name: str = name) -> None:
            seen.setdefault(name, Call(tuple(args), dict(kwargs)))

        handles.append(model.get_submodule(name).register_forward_pre_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad(), kept_modes(model), without_cache(model):
            model.eval()
            model(*example_inputs) if isinstance(example_inputs, tuple) else model(example_inputs)
    finally:
        for h in handles:
            h.remove()
    return {
        n: c
        for n, c in seen.items()
        if any(isinstance(a, torch.Tensor) for a in (*c.args, *c.kwargs.values()))
    }
