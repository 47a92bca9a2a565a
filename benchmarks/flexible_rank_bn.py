"""How many batches re-estimate BatchNorm well enough when a size is taken? The small ResNet, Fashion-MNIST.

Takes the first seed's flexible-rank model of ``benchmarks/flexible_rank.py`` (``--checkpoint``) at 50% of its
MACs and at full size, re-estimating BatchNorm on 5 to 200 training batches (128 images each), from three
different batch orders (seeds), and records the test accuracy of each.

    python benchmarks/flexible_rank_bn.py --checkpoint RUN/final.ckpt   # -> results/flexible_rank_bn.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from lightning_compress.config import build_datamodule, load_config
from lightning_compress.run.compress import find_run_config, load_checkpoint
from lightning_compress.surgery import set_size
from lightning_compress.surgery.measure.sizes import size_basis

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (0, 5, 10, 20, 50, 100, 200)
SHARES = (0.5, 1.0)


@torch.no_grad()
def _accuracy(model: torch.nn.Module, loader: torch.utils.data.DataLoader) -> float:
    model.eval()
    hits = total = 0
    for x, y in loader:
        hits += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return hits / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    module = load_checkpoint(args.checkpoint)
    cfg = load_config(find_run_config(args.checkpoint))
    x = module.example_input_array
    basis = size_basis(module, x)
    rows = []
    for order in (0, 1, 2):
        torch.manual_seed(order)
        datamodule = build_datamodule(cfg.data)
        datamodule.setup("fit")
        datamodule.setup("test")
        for share in SHARES:
            for batches in BATCHES:
                small = set_size(
                    module, x, macs=share, batches=datamodule.train_dataloader(), bn_batches=batches,
                    min_rank=5, basis=basis,
                )  # fmt: skip
                acc = _accuracy(small, datamodule.test_dataloader())
                rows.append({"order": order, "share": share, "bn_batches": batches, "test_acc": acc})
                print(rows[-1], flush=True)
    summary = {
        f"{share:g}@{n}": {
            "mean": statistics.mean(
                r["test_acc"] for r in rows if r["share"] == share and r["bn_batches"] == n
            ),
            "spread": max(r["test_acc"] for r in rows if r["share"] == share and r["bn_batches"] == n)
            - min(r["test_acc"] for r in rows if r["share"] == share and r["bn_batches"] == n),
        }
        for share in SHARES
        for n in BATCHES
    }
    out = {"checkpoint": "flexible_rank resnet_small seed 0", "rows": rows, "summary": summary}
    (ROOT / "benchmarks" / "results" / "flexible_rank_bn.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
