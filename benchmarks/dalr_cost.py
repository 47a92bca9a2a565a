"""Time and peak memory of DALR on VGG-sized fully connected layers, against one truncated SVD.

For a 4096 x 4096 and a 4096 x 25088 Linear layer (VGG-16's fc7 and fc6), synthetic activations with a
decaying spectrum are generated and streamed batch by batch (never stored) through
:func:`~lightning_compress.surgery.compress_low_rank` (DALR, every statistic it needs, the solve and the
split) at several sample counts; the SVD baseline is one ``torch.linalg.svd`` of the same weight. Each
measurement runs in its own process, so its peak resident memory (``ru_maxrss``) is its own.

Usage: python benchmarks/dalr_cost.py [--samples 5000 20000] [--threads 2]
Writes benchmarks/results/dalr_cost.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import torch
from torch import nn

from lightning_compress.surgery import compress_low_rank

OUT = Path(__file__).resolve().parent / "results" / "dalr_cost.json"
SHAPES = [(4096, 4096), (4096, 25088)]
BATCH = 250
RANK = 256


def batches(n: int, samples: int) -> Iterator[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    scale = torch.logspace(0, -2, n)
    for start in range(0, samples, BATCH):
        yield torch.randn(min(BATCH, samples - start), n, generator=g) * scale


def measure(kind: str, m: int, n: int, samples: int) -> dict[str, float]:
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Linear(n, m), nn.Linear(m, 10))
    start = time.perf_counter()
    if kind == "svd":
        torch.linalg.svd(cast(nn.Linear, layer[0]).weight.detach(), full_matrices=False)
    else:
        compress_low_rank(layer, batches(n, samples), method="dalr", include=["0"], rank=RANK)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": round(seconds, 2), "peak_mib": round(peak_mib, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)  # kind m n samples, in a child process
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        kind, m, n, samples = args.one
        print(json.dumps(measure(kind, int(m), int(n), int(samples))))
        return
    rows = []
    for m, n in SHAPES:
        jobs = [("svd", 0)] + [("dalr", s) for s in args.samples]
        for kind, samples in jobs:
            cmd = [
                sys.executable,
                __file__,
                "--threads",
                str(args.threads),
                "--one",
                kind,
                str(m),
                str(n),
                str(samples),
            ]
            out = (
                subprocess.run(cmd, capture_output=True, text=True, check=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            row = {"shape": [m, n], "method": kind, "samples": samples, "rank": RANK, **json.loads(out)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    OUT.write_text(
        json.dumps(
            {"threads": args.threads, "batch": BATCH, "rows": rows, "torch": torch.__version__}, indent=2
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
