"""Which layers low-rank compression acts on: every Linear and ungrouped Conv2d that ``include`` /
``exclude`` select (not the neuron families: a layer needs no family to be split)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lightning_compress._checks import ArgumentError
from lightning_compress.surgery.base import is_conv1d, kept_modes
from lightning_compress.surgery.groups import LayerSelector, check_selectors, matches, validate_selectors

__all__ = ["low_rank_layers"]


_READERS = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


def _read_not_called(model: nn.Module, example_inputs: Any) -> set[str]:
    """Layers whose parent uses their weight without calling them (warned about once per call)."""
    found = {  # torch's attention and transformer layers read their children's weights in forward
        f"{n}.{c}".lstrip(".")
        for n, m in model.named_modules()
        if isinstance(m, _READERS)
        for c, _ in m.named_children()
    }
    if example_inputs is not None:
        called: set[str] = set()
        names = {m: n for n, m in model.named_modules() if n and _splittable(m)}
        handles = [m.register_forward_hook(lambda m, *_: called.add(names[m])) for m in names]
        try:
            with torch.no_grad(), kept_modes(model):
                model.eval()
                model(*example_inputs) if isinstance(example_inputs, tuple) else model(example_inputs)
        finally:
            for h in handles:
                h.remove()
        uncalled = set(names.values()) - called
        if uncalled - found:
            warnings.warn(
                f"{len(uncalled - found)} layers ({sorted(uncalled - found)[0]!r}, ...) are not split: "
                "the forward pass reads their weight without calling them",
                stacklevel=4,
            )
        found |= uncalled
    return found


def _splittable(layer: nn.Module) -> bool:
    return (
        isinstance(layer, nn.Linear)
        or is_conv1d(layer)
        or (isinstance(layer, nn.Conv2d) and layer.groups == 1 and isinstance(layer.padding, tuple))
    )


def low_rank_layers(
    model: nn.Module,
    include: Sequence[LayerSelector] | None = None,
    exclude: Sequence[LayerSelector] = (),
    example_inputs: Any = None,
) -> list[str]:
    """The layers :func:`compress_low_rank` acts on, in module order.

    Default: every Linear, Hugging Face ``Conv1D`` and ``groups=1`` Conv2d but the last one registered (the
    output layer). Left dense: layers whose parent reads their weight
    instead of calling them (the Linears of ``nn.MultiheadAttention`` and of ``nn.TransformerEncoderLayer``
    and ``nn.TransformerDecoderLayer``, whose fast-path check reads them, and, given ``example_inputs``, any
    layer a forward pass does not call: a pair in its place would not be used). ``include`` /
    ``exclude``: name patterns or module types; one matching nothing, or an ``include`` naming a grouped
    convolution, is an error.

    Example:
        >>> low_rank_layers(nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4), nn.Linear(4, 2)))
        ['0', '2']
        >>> low_rank_layers(nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.Conv2d(4, 8, 1), nn.Conv2d(8, 2, 1)))
        ['1']
    """
    check_selectors(include, exclude)
    for argument, selectors in (("include", include or []), ("exclude", exclude)):
        try:
            validate_selectors(model, list(selectors), argument)
        except (TypeError, ValueError) as err:
            raise ArgumentError(argument, str(err)) from None
    layers = [
        (n, m)
        for n, m in model.named_modules()
        if n and (isinstance(m, (nn.Linear, nn.Conv2d)) or is_conv1d(m))
    ]
    default = [(n, m) for n, m in layers[:-1] if _splittable(m)]  # grouped convs left out
    default = [(n, m) for n, m in default if n not in _read_not_called(model, example_inputs)]
    layers = default if include is None else [(n, m) for n, m in layers if matches(n, m, include)]
    names = [n for n, m in layers if not matches(n, m, exclude)]
    if bad := next((n for n in names if not _splittable(model.get_submodule(n))), None):
        raise ArgumentError("include", f"layer {bad!r}: grouped convolutions cannot be split")
    if not names:
        raise ArgumentError("include", "include/exclude leave no Linear or Conv2d layer to compress")
    return names
