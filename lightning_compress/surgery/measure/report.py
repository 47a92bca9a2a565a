"""Per-layer widths and a report of zero / near-zero neurons (the Adam + L2 + ReLU effect)."""

from __future__ import annotations

from typing import Any

from torch import nn

from lightning_compress.surgery.groups import find_groups
from lightning_compress.surgery.removal import group_norms

__all__ = ["format_neuron_report", "layer_widths", "neuron_report"]


def layer_widths(model: nn.Module) -> dict[str, int]:
    """Output width of every Linear and Conv layer, by name.

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> layer_widths(LeNet300100())
        {'1': 300, '3': 100, '5': 10}
    """
    widths = {}
    for name, layer in model.named_modules():
        if isinstance(layer, nn.Linear):
            widths[name] = layer.out_features
        elif isinstance(layer, nn.modules.conv._ConvNd):
            widths[name] = layer.out_channels
    return widths


def neuron_report(
    model: nn.Module, example_inputs: Any, *, relative_threshold: float = 1e-3
) -> list[dict[str, Any]]:
    """One row per layer: width, exactly-zero and near-zero neurons (incoming-group norm at most
    ``relative_threshold`` times the layer's largest), and the norms' spread.

    Example:
        >>> import torch
        >>> from lightning_compress.models import LeNet300100
        >>> model = LeNet300100(hidden=(4, 3))
        >>> with torch.no_grad():
        ...     model[1].weight[0] = 0; model[1].bias[0] = 0; model[1].weight[1] *= 1e-5; model[1].bias[1] *= 1e-5
        >>> [(r["layer"], r["width"], r["zero"], r["near_zero"]) for r in neuron_report(model, torch.zeros(1, 784))]
        [('1', 4, 1, 2), ('3', 3, 0, 0)]
    """
    families = find_groups(model, example_inputs)
    rows = []
    for family in families:
        norms = group_norms(model, [family])[family.name].cpu()
        cut = relative_threshold * float(norms.max())
        rows.append(
            {
                "layer": ",".join(family.layers),
                "width": family.num_groups,
                "zero": int((norms == 0).sum()),
                "near_zero": int((norms <= cut).sum()),
                "min_norm": float(norms.min()),
                "median_norm": float(norms.median()),
                "max_norm": float(norms.max()),
            }
        )
    return rows


def format_neuron_report(rows: list[dict[str, Any]]) -> str:
    """A terminal table of :func:`neuron_report` rows.

    Example:
        >>> row = {"layer": "1", "width": 4, "zero": 1, "near_zero": 2, "min_norm": 0.0, "median_norm": 0.5, "max_norm": 1.0}
        >>> print(format_neuron_report([row]).splitlines()[-1])
        total                             4      1       2   (50.0% near zero)
    """
    head = f"{'layer':<28}{'width':>7}{'zero':>7}{'near 0':>8}{'min norm':>11}{'median':>10}{'max':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['layer'][:27]:<28}{r['width']:>7}{r['zero']:>7}{r['near_zero']:>8}"
            f"{r['min_norm']:>11.2e}{r['median_norm']:>10.3f}{r['max_norm']:>10.3f}"
        )
    total, near = sum(r["width"] for r in rows), sum(r["near_zero"] for r in rows)
    lines.append(
        f"{'total':<28}{total:>7}{sum(r['zero'] for r in rows):>7}{near:>8}   ({near / max(total, 1):.1%} near zero)"
    )
    return "\n".join(lines)
