"""Which layers low-rank compression acts on: every Linear and ungrouped Conv2d that ``include`` /
``exclude`` select (not the neuron families: a layer needs no family to be split)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from torch import nn

from lightning_compress._checks import ArgumentError
from lightning_compress.surgery.base import is_conv1d
from lightning_compress.surgery.groups import LayerSelector, check_selectors, matches, validate_selectors

__all__ = ["low_rank_layers"]


def _splittable(layer: nn.Module) -> bool:
    return isinstance(layer, nn.Linear) or (
        isinstance(layer, nn.Conv2d) and layer.groups == 1 and isinstance(layer.padding, tuple)
    )


def low_rank_layers(
    model: nn.Module, include: Sequence[LayerSelector] | None = None, exclude: Sequence[LayerSelector] = ()
) -> list[str]:
    """The layers :func:`compress_low_rank` acts on, in module order.

    Default: every Linear and ``groups=1`` Conv2d but the last one registered (the output layer); Hugging
    Face ``Conv1D`` layers are left dense, with a warning. ``include`` / ``exclude``: name patterns or
    module types; one matching nothing, or an ``include`` naming a grouped convolution, is an error.

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
    layers = [(n, m) for n, m in model.named_modules() if n and isinstance(m, (nn.Linear, nn.Conv2d))]
    default = [(n, m) for n, m in layers[:-1] if _splittable(m)]  # grouped convs left out
    if conv1d := [n for n, m in model.named_modules() if is_conv1d(m)]:  # GPT-2's: grouped, not split
        warnings.warn(
            f"{len(conv1d)} Conv1D layers ({conv1d[0]!r}, ...) are not split: stored (in, out)", stacklevel=3
        )
    layers = default if include is None else [(n, m) for n, m in layers if matches(n, m, include)]
    names = [n for n, m in layers if not matches(n, m, exclude)]
    if bad := next((n for n in names if not _splittable(model.get_submodule(n))), None):
        raise ArgumentError("include", f"layer {bad!r}: grouped convolutions cannot be split")
    if not names:
        raise ArgumentError("include", "include/exclude leave no Linear or Conv2d layer to compress")
    return names
