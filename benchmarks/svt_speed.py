"""Singular value thresholding: the full SVD against a randomized one of the rank the last prox left.

For layer shapes from the example models and a VGG-sized fc layer, each weight is a rank-30 matrix plus
noise (what a layer looks like once the nuclear norm has acted for a while) and ``tau`` leaves about
rank 30. Timed on one CPU thread, median of ``--repeats``; the difference is the largest absolute
entry of (randomized - full) over the largest entry of the full result.

Usage: python benchmarks/svt_speed.py [--repeats 7]; writes benchmarks/results/svt_speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from lightning_compress.functional import singular_value_threshold

OUT = Path(__file__).resolve().parent / "results" / "svt_speed.json"
SHAPES = {
    "lenet300_100 fc1 (300 x 784)": (300, 784),
    "lenet300_100 fc2 (100 x 300)": (100, 300),
    "lenet5 conv2 as a matrix (16 x 150)": (16, 150),
    "vgg conv 3x3, 512 ch (512 x 4608)": (512, 4608),
    "fc 1024 x 1024": (1024, 1024),
}


def _median_ms(fn: Callable[..., Any], repeats: int, *args: Any, **kwargs: Any) -> float:
    fn(*args, **kwargs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e3, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, (m, n) in SHAPES.items():
        gen = torch.Generator().manual_seed(0)
        k = min(30, min(m, n) // 3)
        w = torch.randn(m, k, generator=gen) @ torch.randn(k, n, generator=gen) / k**0.5
        w += 0.01 * torch.randn(m, n, generator=gen)
        s = torch.linalg.svdvals(w)
        tau = float(s[k] + s[k - 1]) / 2  # between the signal and the noise
        full, rank = singular_value_threshold(w, tau)
        fast, fast_rank = singular_value_threshold(w, tau, rank_hint=rank)
        full_ms = _median_ms(singular_value_threshold, args.repeats, w, tau)
        fast_ms = _median_ms(singular_value_threshold, args.repeats, w, tau, rank_hint=rank)
        rows.append(
            {
                "layer": name,
                "rank": rank,
                "randomized_rank": fast_rank,
                "full_ms": full_ms,
                "randomized_ms": fast_ms,
                "speedup": round(full_ms / fast_ms, 2),
                "relative_difference": float((fast - full).abs().max() / full.abs().max()),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "threads": 1, "layers": rows}
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
