"""CPU latency of layers split in two (``surgery.factorized``) against their dense form, one thread.

For each layer shape and each rank (a share of the break-even rank ``m n / (m + n)``), the median time of
a forward pass at batch 1 and batch 256 (``torch.utils.benchmark``), the speed-up over the dense layer and
the MAC reduction; then whole models before and after their hidden layers are split. A speed-up below
the MAC reduction is the price of two small matrix products instead of one.

Usage: python benchmarks/low_rank_latency.py; writes benchmarks/results/low_rank_latency.json.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.benchmark import Timer

from lightning_compress.functional import break_even_rank
from lightning_compress.models import LeNet5, LeNet300100
from lightning_compress.surgery import factorize_layer, factorized

OUT = Path(__file__).resolve().parent / "results" / "low_rank_latency.json"
SHARES = [0.1, 0.25, 0.5, 0.9]


def _layers() -> dict[str, tuple[nn.Linear | nn.Conv2d, tuple[int, ...]]]:
    return {
        "Linear 784->300": (nn.Linear(784, 300), (784,)),
        "Linear 300->100": (nn.Linear(300, 100), (300,)),
        "Linear 1024->1024": (nn.Linear(1024, 1024), (1024,)),
        "Conv 20->50 5x5 on 12x12": (nn.Conv2d(20, 50, 5), (20, 12, 12)),
        "Conv 64->64 3x3 on 16x16": (nn.Conv2d(64, 64, 3, padding=1), (64, 16, 16)),
    }


def median_us(module: nn.Module, x: torch.Tensor) -> float:
    module.eval()
    with torch.no_grad():
        timer = Timer("m(x)", globals={"m": module, "x": x}, num_threads=1)
        return timer.blocked_autorange(min_run_time=0.3).median * 1e6


def _macs(m: int, n: int, positions: int, rank: int | None) -> int:
    return positions * (m * n if rank is None else rank * (m + n))


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    for name, (layer, shape) in _layers().items():
        weight: torch.Tensor = layer.weight
        m, n = int(weight.shape[0]), int(weight[0].numel())
        with torch.no_grad():
            positions = layer(torch.zeros(1, *shape)).shape[2:].numel() if weight.ndim == 4 else 1
        for batch in (1, 256):
            x = torch.randn(batch, *shape)
            dense = median_us(layer, x)
            for share in SHARES:
                rank = max(1, math.floor(share * break_even_rank(m, n)))
                pair = factorized(layer, rank)
                split_us = median_us(pair, x)
                rows.append(
                    {
                        "layer": name,
                        "batch": batch,
                        "rank": rank,
                        "dense_us": round(dense, 1),
                        "split_us": round(split_us, 1),
                        "speedup": round(dense / split_us, 2),
                        "mac_reduction": round(
                            _macs(m, n, positions, None) / _macs(m, n, positions, rank), 2
                        ),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    models: list[dict[str, Any]] = []
    cases: list[tuple[str, nn.Module, dict[str, int], tuple[int, ...]]] = [
        ("LeNet-300-100, ranks 18 / 12", LeNet300100(), {"1": 18, "3": 12}, (1, 28, 28)),
        ("LeNet-5, ranks 8 / 10", LeNet5(), {"features.3": 8, "classifier.1": 10}, (1, 28, 28)),
    ]
    for label, model, ranks, shape in cases:
        split = LeNet300100() if label.startswith("LeNet-300") else LeNet5()
        split.load_state_dict(model.state_dict())
        names = {n for n, _ in split.named_modules()}
        for layer_name, rank in ranks.items():
            if layer_name in names:
                factorize_layer(split, layer_name, rank)
        for batch in (1, 256):
            x = torch.randn(batch, *shape)
            before_us, after_us = median_us(model, x), median_us(split, x)
            models.append(
                {
                    "model": label,
                    "split": sorted(r for r in ranks if r in names),
                    "batch": batch,
                    "dense_us": round(before_us, 1),
                    "split_us": round(after_us, 1),
                    "speedup": round(before_us / after_us, 2),
                    "params": [
                        sum(p.numel() for p in model.parameters()),
                        sum(p.numel() for p in split.parameters()),
                    ],
                }
            )
            print(json.dumps(models[-1]), flush=True)
    OUT.write_text(
        json.dumps({"threads": 1, "torch": torch.__version__, "layers": rows, "models": models}, indent=2)
        + "\n"
    )


if __name__ == "__main__":
    main()
