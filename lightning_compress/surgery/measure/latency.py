"""A whole model's inference latency, measured (not estimated from MACs), and the key of its architecture."""

from __future__ import annotations

import contextlib
import hashlib
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Latency", "architecture_key", "measure_latency"]


@dataclass(frozen=True)
class Latency:
    """Forward time of one batch in milliseconds: the median of ``runs`` timed runs after ``warmup`` untimed
    ones, and its spread (the 25th and 75th percentiles, and the fastest run).

    Example:
        >>> t = Latency(median_ms=2.0, q25_ms=1.9, q75_ms=2.2, min_ms=1.8, runs=30, warmup=5, batch_size=256, threads=1)
        >>> round(t.spread_ms, 3), t.as_dict()["batch_size"]
        (0.3, 256)
    """

    median_ms: float
    q25_ms: float
    q75_ms: float
    min_ms: float
    runs: int
    warmup: int
    batch_size: int
    threads: int

    @property
    def spread_ms(self) -> float:
        """The interquartile range."""
        return self.q75_ms - self.q25_ms

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_latency(
    model: nn.Module | Callable[[torch.Tensor], Any],
    example: torch.Tensor,
    *,
    batch_size: int = 256,
    threads: int = 1,
    warmup: int = 5,
    runs: int = 30,
) -> Latency:
    """Time ``model`` on a batch of ``batch_size`` copies of ``example``'s first sample, without gradients,
    on ``example``'s device with ``threads`` torch threads (restored afterwards).

    ``model`` may be any callable: a module, or an exported program's ``.module()``.

    Example:
        >>> small = measure_latency(nn.Linear(64, 64), torch.zeros(1, 64), batch_size=64, runs=5)
        >>> large = measure_latency(nn.Linear(1024, 1024), torch.zeros(1, 1024), batch_size=64, runs=5)
        >>> large.median_ms > small.median_ms, small.min_ms <= small.median_ms <= small.q75_ms
        (True, True)
    """
    if batch_size < 1 or threads < 1 or runs < 1 or warmup < 0:
        raise ValueError(
            f"batch_size, threads and runs must be >= 1, warmup >= 0: {batch_size=}, {threads=}, {runs=}"
        )
    x = example[:1].expand(batch_size, *example.shape[1:]).contiguous()
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    if isinstance(model, nn.Module):
        with contextlib.suppress(NotImplementedError):  # an exported program's module is in eval mode
            model.eval()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    times = []
    try:
        with torch.no_grad():
            for i in range(warmup + runs):
                sync()
                start = time.perf_counter()
                model(x)
                sync()
                if i >= warmup:
                    times.append(1000 * (time.perf_counter() - start))
    finally:
        torch.set_num_threads(before)
    q25, _, q75 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return Latency(
        median_ms=round(statistics.median(times), 4),
        q25_ms=round(q25, 4),
        q75_ms=round(q75, 4),
        min_ms=round(min(times), 4),
        runs=runs,
        warmup=warmup,
        batch_size=batch_size,
        threads=threads,
    )


def architecture_key(model: nn.Module) -> str:
    """A short hash of ``model``'s architecture: every submodule's name and class, every parameter's and
    buffer's name and shape. Two models with the same key run the same computation on different weights.

    Example:
        >>> a, b = nn.Linear(4, 3), nn.Linear(4, 3)
        >>> architecture_key(a) == architecture_key(b), architecture_key(a) == architecture_key(nn.Linear(4, 2))
        (True, False)
    """
    parts = [f"{n}:{type(m).__name__}" for n, m in model.named_modules()]
    parts += [f"{n}{tuple(t.shape)}" for n, t in model.named_parameters()]
    parts += [f"{n}{tuple(t.shape)}" for n, t in model.named_buffers()]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]
