"""Which layers feed a normalization over features, where removing even an all-zero feature is not exact.

A LayerNorm, GroupNorm or RMSNorm computes its statistics over the features it is given: a feature that
is exactly zero still counts in the mean and the variance, so removing it changes every other feature's
output. Groups whose outputs reach such a normalization are left out of the groups (with a warning):
neither regularized nor removed. The exception is an affine LayerNorm over exactly a family's features:
it is part of the family and is replaced, when features are removed, by one that still divides by the
original width (:mod:`lightning_compress.surgery.removal.width`). BatchNorm and other per-channel normalizations
are not affected.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["channels_first_layer_norm", "is_feature_norm", "layers_feeding_feature_norms"]

_FEATURE_NORMS: tuple[type[nn.Module], ...] = (nn.LayerNorm, nn.GroupNorm) + (
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()
)
_MIXING = (
    nn.Linear,
    nn.modules.conv._ConvNd,
    nn.MultiheadAttention,
)  # outputs that mix their inputs' features
_PER_CHANNEL = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def channels_first_layer_norm(module: nn.Module) -> bool:
    """An affine ``nn.LayerNorm`` subclass that normalizes dimension 1 of an ``(N, C, H, W)`` input, as
    torchvision's and timm's ``LayerNorm2d`` (or one already cut, which keeps its divisor).

    Example:
        >>> class LayerNorm2d(nn.LayerNorm):
        ...     def forward(self, x):
        ...         return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        >>> channels_first_layer_norm(LayerNorm2d(4)), channels_first_layer_norm(nn.LayerNorm(4))
        (True, False)
    """
    if not isinstance(module, nn.LayerNorm) or module.weight is None or len(module.normalized_shape) != 1:
        return False
    if hasattr(module, "full_width"):
        return bool(getattr(module, "channels_first", False))
    if type(module).forward is nn.LayerNorm.forward:
        return False
    weight = module.weight
    gen = torch.Generator(device=weight.device).manual_seed(0)
    shape = (2, module.normalized_shape[0], 3, 3)
    x = torch.randn(shape, generator=gen, device=weight.device, dtype=weight.dtype)
    try:
        with torch.no_grad():
            y = module(x)
    except Exception:  # the user's forward code: any failure says it is not one
        return False
    last = x.permute(0, 2, 3, 1)
    expected = nn.functional.layer_norm(last, module.normalized_shape, module.weight, module.bias, module.eps)
    return (
        isinstance(y, torch.Tensor)
        and y.shape == x.shape
        and bool(torch.allclose(y, expected.permute(0, 3, 1, 2), atol=1e-5))
    )


def is_feature_norm(module: nn.Module) -> bool:
    """LayerNorm, GroupNorm, RMSNorm, or a user's module named ``*Norm`` that is not per-channel.

    Example:
        >>> is_feature_norm(nn.LayerNorm(4)), is_feature_norm(nn.BatchNorm1d(4))
        (True, False)
    """
    if isinstance(module, _FEATURE_NORMS):
        return True
    return type(module).__name__.endswith("Norm") and not isinstance(module, _PER_CHANNEL)


def _forward(model: nn.Module, inputs: Any) -> Any:
    return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


def layers_feeding_feature_norms(
    model: nn.Module,
    layers: Iterable[str],
    example_inputs: Any,
    *,
    exact: Mapping[str, Collection[str]] | None = None,
) -> dict[str, str]:
    """Layer name -> the feature normalization its outputs reach, for each of ``layers`` that has one.

    ``exact`` maps a layer to the normalizations it may reach without being reported (those whose
    features are exactly the layer's family, removed exactly by :mod:`lightning_compress.surgery.removal.width`).

    Follows the autograd graph of one forward pass back from every normalization's input through
    element-wise operations, reshapes and residual adds, stopping at the named layers (whose outputs
    are the features in question) and at any other Linear, Conv or attention layer (which mixes them).

    Example:
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.GELU(), nn.Linear(4, 2))
        >>> layers_feeding_feature_norms(model, ["0", "3"], torch.zeros(1, 3))
        {'0': '1'}
    """
    names = {name: model.get_submodule(name) for name in layers}
    norms = {n: m for n, m in model.named_modules() if n and is_feature_norm(m)}
    if not norms or not names:
        return {}
    produced: dict[Any, str | None] = {}  # grad_fn of a layer's output -> layer name (None: another layer)
    entering: dict[str, Any] = {}  # norm name -> grad_fn of its input
    handles = []
    mixing = {n: m for n, m in model.named_modules() if isinstance(m, _MIXING) and n not in names}
    for name, layer in [*names.items(), *mixing.items()]:

        def out_hook(
            _: nn.Module, __: Any, output: Any, name: str | None = name if name in names else None
        ) -> None:
            out = output[0] if isinstance(output, tuple) and output else output
            if isinstance(out, torch.Tensor) and out.grad_fn is not None:
                produced[out.grad_fn] = name

        handles.append(layer.register_forward_hook(out_hook))
    for name, norm in norms.items():

        def in_hook(_: nn.Module, args: tuple[Any, ...], name: str = name) -> None:
            if args and isinstance(args[0], torch.Tensor):
                entering[name] = args[0].grad_fn

        handles.append(norm.register_forward_pre_hook(in_hook))
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.enable_grad():
            _forward(model, example_inputs)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    found: dict[str, str] = {}
    for norm_name, start in entering.items():
        stack, seen = [start], set()
        while stack:
            fn = stack.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            if fn in produced:
                start_layer = produced[fn]
                if start_layer is not None and norm_name not in (exact or {}).get(start_layer, ()):
                    found.setdefault(start_layer, norm_name)
                continue  # the features start here (or are mixed by another layer): do not look further back
            stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return found
