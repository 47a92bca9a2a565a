"""DALR in its paper's setting (Masana et al. 2017): a conv backbone's wide fully connected layers compressed for
a distant target domain, against truncated SVD, on real Fashion-MNIST.

Source task: Fashion-MNIST classes 0-4 (clothes: T-shirt, trouser, pullover, dress, coat; 30,000 training
images, upright). Target task: classes 5-9 (sandal, shirt, sneaker, bag, ankle boot), every image transposed
(rotated a quarter turn and mirrored), so the target differs from the source in both its classes and its
low-level statistics; ``--target-train`` of its training images fine-tune the network, ``--calibration``
others calibrate DALR, its 5,000 test images test. The network is VGG-shaped in miniature: two 3x3 conv
blocks (32 and 64 channels, max-pooled) then ``fc6`` (3,136 -> 1,024), ``fc7`` (1,024 -> 1,024) and a head;
it is trained on the source, its head replaced and the whole network fine-tuned on the target (the paper's
fine-tuned VGG-19). Then, as in the paper's Tables 3-6, ``fc6`` alone, ``fc7`` alone, and both together
under one budget (``both``) are split in two by SVD and by DALR at every share of a fine grid of budgets
(each step 1.08x the last), and tested on the target: without retraining (the paper), and after one epoch of
fine-tuning the fully connected layers on the target images (the same for both methods).

Reported: per seed and layer, the fewest weights kept within 1 point of the fine-tuned dense network by
each method, and SVD's over DALR's; the median over seeds.

Usage: python benchmarks/dalr_paper.py --seeds 0 1 2 [--out FILE] [--summarize]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dalr_transfer import _images, accuracy, domain_arguments, fit, run_and_summarize

from lightning_compress.surgery import compress_low_rank

RESULTS = Path(__file__).resolve().parent / "results"
SHARES = [round(0.002 * 1.08**i, 6) for i in range(72)]  # 0.2% ... 47% of the layers' weights
TARGETS = {"fc6": ["0"], "fc7": ["2"], "both": ["0", "2"]}
DROPS = (0.01, 0.02)


def backbone() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )


def fc_layers(num_classes: int = 5) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(3136, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, num_classes)
    )


def domains(seed: int, target_train: int, calibration: int) -> dict[str, TensorDataset]:
    x, y = _images("train")
    tx, ty = _images("t10k")
    g = torch.Generator().manual_seed(seed)
    source = y < 5
    target = torch.nonzero(~source).flatten()
    target = target[torch.randperm(target.numel(), generator=g)]
    fit_idx, calib = target[:target_train], target[target_train : target_train + calibration]
    test = ty >= 5

    def moved(images: torch.Tensor) -> torch.Tensor:
        return images.transpose(-1, -2).contiguous()

    return {
        "source": TensorDataset(x[source], y[source]),
        "target": TensorDataset(moved(x[fit_idx]), y[fit_idx] - 5),
        "calibration": TensorDataset(moved(x[calib]), y[calib] - 5),
        "test": TensorDataset(moved(tx[test]), ty[test] - 5),
    }


@torch.no_grad()
def features(net: nn.Module, data: TensorDataset) -> TensorDataset:
    net.eval()
    x, y = data.tensors
    return TensorDataset(torch.cat([net(b) for b in x.split(500)]), y)


def trained(args: argparse.Namespace, seed: int, data: dict[str, TensorDataset]) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(backbone(), fc_layers())
    cached = args.cache / f"paper_seed{seed}.pt" if args.cache else None
    if cached is not None and cached.is_file():
        model.load_state_dict(torch.load(cached, weights_only=True))
        return model
    fit(model, data["source"], args.source_epochs, 0.02, seed)
    cast(nn.Sequential, model[1])[4] = nn.Linear(1024, 5)  # a new head for the target classes
    fit(model, data["target"], args.target_epochs, 0.005, seed)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), cached)
    return model


def run(args: argparse.Namespace, seed: int) -> list[dict[str, Any]]:
    data = domains(seed, args.target_train, args.calibration)
    start = time.perf_counter()
    model = trained(args, seed, data)
    train_s = time.perf_counter() - start
    feats = {k: features(model[0], v) for k, v in data.items() if k != "source"}
    head = model[1]
    base = accuracy(head, feats["test"])
    print(f"seed {seed}: target test accuracy {base:.4f} (trained in {train_s:.0f} s)", flush=True)
    calib = DataLoader(feats["calibration"], batch_size=500)
    rows = []
    for target, layers in TARGETS.items():
        dense = sum(cast(nn.Linear, head.get_submodule(n)).weight.numel() for n in layers)
        for method in ("svd", "dalr"):
            for share in SHARES:
                net = copy.deepcopy(head)
                results = compress_low_rank(net, calib, method=method, include=layers, params=share)
                acc = accuracy(net, feats["test"])
                fit(net, feats["target"], 1, 0.001, seed)
                rows.append(
                    {
                        "seed": seed,
                        "target": target,
                        "method": method,
                        "share": share,
                        "kept": sum(r.params_after for r in results),
                        "dense": dense,
                        "ranks": [r.rank for r in results],
                        "base_acc": base,
                        "acc": acc,
                        "acc_ft": accuracy(net, feats["test"]),
                    }
                )
        print(f"seed {seed}: {target} done", flush=True)
    return rows


def smallest_within(rows: list[dict[str, Any]], key: str, drop: float) -> int | None:
    """The fewest kept weights among budgets whose accuracy is within ``drop`` of the dense network."""
    ok = [r["kept"] for r in rows if r[key] >= r["base_acc"] - drop - 1e-9]
    return min(ok) if ok else None


def ratios(rows: list[dict[str, Any]]) -> dict[tuple[str, str, float], list[float]]:
    """SVD's fewest kept weights over DALR's, per (target, accuracy key, drop), one value per seed."""
    out: dict[tuple[str, str, float], list[float]] = {}
    for target in TARGETS:
        for key in ("acc", "acc_ft"):
            for drop in DROPS:
                for seed in sorted({r["seed"] for r in rows}):
                    kept = {
                        m: smallest_within(
                            [r for r in rows if (r["seed"], r["target"], r["method"]) == (seed, target, m)],
                            key,
                            drop,
                        )
                        for m in ("svd", "dalr")
                    }
                    svd, dalr = kept["svd"], kept["dalr"]
                    out.setdefault((target, key, drop), []).append(svd / dalr if svd and dalr else math.nan)
    return out


def summarize(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    seeds = sorted({r["seed"] for r in rows})
    base = {s: next(r["base_acc"] for r in rows if r["seed"] == s) for s in seeds}
    lines = [
        "Dense target accuracy per seed: " + ", ".join(f"{100 * base[s]:.2f}%" for s in seeds) + ".",
        "",
        "| layers | fine-tune | drop | "
        + " | ".join(f"seed {s}: SVD / DALR kept" for s in seeds)
        + " | median SVD / DALR |",
        "|---|---|---|" + "---|" * (len(seeds) + 1),
    ]
    for (target, key, drop), values in ratios(rows).items():
        cells = []
        for s, v in zip(seeds, values, strict=True):
            kept = [
                smallest_within(
                    [r for r in rows if (r["seed"], r["target"], r["method"]) == (s, target, m)], key, drop
                )
                for m in ("svd", "dalr")
            ]
            cells.append(" / ".join(f"{k:,}" if k else "-" for k in kept) + f" ({v:.2f}x)")
        label = "none (paper)" if key == "acc" else "1 epoch, fc layers"
        median = statistics.median(values)
        lines.append(
            f"| {target} | {label} | {100 * drop:.0f} pt | " + " | ".join(cells) + f" | **{median:.2f}x** |"
        )
    table = "\n".join(lines) + "\n"
    path.with_suffix(".md").write_text(table)
    _plot(rows, path.with_suffix(".png"))
    return table


def _plot(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TARGETS), figsize=(14, 4), sharey=True)
    base = 100 * statistics.mean({r["seed"]: r["base_acc"] for r in rows}.values())
    for ax, target in zip(axes, TARGETS, strict=True):
        for method in ("svd", "dalr"):
            for key, style in (("acc", "-"), ("acc_ft", ":")):
                pts = [r for r in rows if r["target"] == target and r["method"] == method]
                shares = sorted({r["share"] for r in pts})
                kept = [statistics.mean(r["kept"] for r in pts if r["share"] == s) for s in shares]
                acc = [100 * statistics.mean(r[key] for r in pts if r["share"] == s) for s in shares]
                label = f"{method}, {'no retraining' if key == 'acc' else '1-epoch fine-tune'}"
                ax.plot(kept, acc, style, marker="o", markersize=2, label=label)
        ax.axhline(base - 1, color="k", lw=0.8, ls="--", label="1 point below dense")
        ax.set_xscale("log")
        ax.set_ylim(base - 20, base + 2)
        ax.set_title(f"{target}: target test accuracy")
        ax.set_xlabel("weights kept (mean of seeds)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[-1].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    args = domain_arguments(__doc__, source_epochs=4, out=RESULTS / "dalr_paper.jsonl").parse_args()
    run_and_summarize(args, run, summarize)


if __name__ == "__main__":
    main()
