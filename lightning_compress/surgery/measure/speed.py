"""Whether a layer split in two runs faster than the dense layer, measured on the current device."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping

import torch
from torch import nn

from lightning_compress.surgery.base.activations import capture_inputs
from lightning_compress.surgery.factorize import factorized

__all__ = ["split_speedups"]


def _median_seconds(layer: nn.Module, x: torch.Tensor, repeats: int) -> float:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    with torch.no_grad():
        layer(x)  # warm-up
        times = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            layer(x)
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def split_speedups(
    model: nn.Module, ranks: Mapping[str, int], example_inputs: object, *, batch: int = 1, repeats: int = 20
) -> dict[str, float]:
    """Layer name -> dense forward time over split forward time at ``ranks[name]`` (> 1: the split is faster).

    Each layer is timed on the input it sees for ``example_inputs``, repeated to ``batch`` samples, on
    the model's device, median of ``repeats`` runs after a warm-up; the model is not changed.

    Example:
        >>> model = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
        >>> speed = split_speedups(model, {"0": 8}, torch.zeros(1, 512), batch=64)
        >>> list(speed), speed["0"] > 0
        (['0'], True)
    """
    if batch < 1 or repeats < 1:
        raise ValueError(f"batch and repeats must be >= 1, got {batch=}, {repeats=}")
    inputs = capture_inputs(model, ranks, example_inputs)
    out = {}
    for name, rank in ranks.items():
        layer = model.get_submodule(name)
        x = inputs[name][:1].expand(batch, *inputs[name].shape[1:]).contiguous()
        assert isinstance(layer, (nn.Linear, nn.Conv2d))
        pair = factorized(layer, int(rank)).eval()
        out[name] = _median_seconds(layer, x, repeats) / _median_seconds(pair, x, repeats)
    return out
