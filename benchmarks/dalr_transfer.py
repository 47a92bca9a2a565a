"""DALR against truncated SVD after domain transfer (Masana et al. 2017), on real Fashion-MNIST.

Source domain: Fashion-MNIST classes 0-4 (30,000 training images). Target domain: classes 5-9, of which
only ``--target-train`` training images are used to fine-tune and ``--calibration`` other training images
are held apart to calibrate the compression (the test set is never seen before testing). A 784-1000-1000
MLP is pre-trained on the source, its head replaced and the whole network fine-tuned on the target; then
its two large hidden layers are split in two by each method under one parameter budget (a share of their
weights; ranks allocated across the two layers by each method's own spectrum) and tested on the target
test images (5,000), without and with a one-epoch fine-tune.

Methods: ``svd`` (truncated SVD), ``svd_bias`` (with bias compensation), ``dalr_bias`` (DALR on the
centered inputs, with bias compensation), ``dalr`` (every layer on the
original inputs, the paper), ``dalr_seq`` (each layer on the inputs of the already compressed layers) and
``dalr_cor`` (as ``dalr_seq``, but fitted to the original network's outputs of the layer).

Usage: python benchmarks/dalr_transfer.py --seeds 0 1 2 [--threads 1] [--out FILE]
Writes one JSON line per (seed, method, budget) to benchmarks/results/dalr_transfer.jsonl (or --out);
``--summarize`` reads them and writes the table (dalr_transfer.md) and plot (dalr_transfer.png).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_compress.data import FASHION_MNIST, read_idx
from lightning_compress.models import LeNet300100
from lightning_compress.surgery import compress_low_rank

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = {
    "svd": {"method": "svd"},
    "svd_bias": {"method": "svd_bias"},
    "dalr": {"method": "dalr"},
    "dalr_bias": {"method": "dalr_bias"},
    "dalr_seq": {"method": "dalr", "order": "sequential"},
    "dalr_cor": {"method": "dalr", "order": "corrected"},
}
LAYERS = ["1", "3"]  # the two 1000-wide hidden layers
SHARES = [round(0.004 * 2 ** (i / 3), 5) for i in range(22)]  # 0.4% ... 50% of their weights


def _images(prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    folder = Path(FASHION_MNIST.system_dir)
    x = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz").float().div_(255)
    y = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").long()
    return ((x - FASHION_MNIST.mean) / FASHION_MNIST.std).unsqueeze(1), y


def domains(seed: int, target_train: int, calibration: int) -> dict[str, TensorDataset]:
    x, y = _images("train")
    tx, ty = _images("t10k")
    g = torch.Generator().manual_seed(seed)
    source = y < 5
    target = torch.nonzero(~source).flatten()
    target = target[torch.randperm(target.numel(), generator=g)]
    fit, calib = target[:target_train], target[target_train : target_train + calibration]
    test = ty >= 5
    return {
        "source": TensorDataset(x[source], y[source]),
        "target": TensorDataset(x[fit], y[fit] - 5),
        "calibration": TensorDataset(x[calib], y[calib] - 5),
        "test": TensorDataset(tx[test], ty[test] - 5),
    }


def fit(model: nn.Module, data: TensorDataset, epochs: int, lr: float, seed: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(data, batch_size=128, shuffle=True, generator=torch.Generator().manual_seed(seed))
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()


@torch.no_grad()
def accuracy(model: nn.Module, data: TensorDataset) -> float:
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in DataLoader(data, batch_size=1000))
    return correct / len(data)


def run(
    args: argparse.Namespace, seed: int, shares: dict[str, list[float]] | None = None
) -> list[dict[str, Any]]:
    """Every (method, share) of ``args.methods`` x ``SHARES`` on ``seed`` (``shares``: only these)."""
    torch.manual_seed(seed)
    data = domains(seed, args.target_train, args.calibration)
    model = LeNet300100(hidden=(1000, 1000), num_classes=5)
    cached = args.cache / f"seed{seed}.pt" if args.cache else None
    if cached is not None and cached.is_file():
        model.load_state_dict(torch.load(cached, weights_only=True))
    else:
        model[5] = nn.Linear(1000, 5)  # the source head (5 source classes)
        fit(model, data["source"], args.source_epochs, 0.05, seed)
        model[5] = nn.Linear(1000, 5)  # a new head for the target classes
        fit(model, data["target"], args.target_epochs, 0.01, seed)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), cached)
    base = accuracy(model, data["test"])
    dense = sum(cast(nn.Linear, model.get_submodule(n)).weight.numel() for n in LAYERS)
    print(f"seed {seed}: target test accuracy {base:.4f} with {dense:,} weights in the hidden layers")
    calib = DataLoader(data["calibration"], batch_size=250)
    rows = []
    for method in args.methods if shares is None else list(shares):
        kwargs: dict[str, Any] = dict(METHODS[method])
        if kwargs["method"].startswith("dalr"):
            kwargs["ridge"] = args.ridge
        for share in SHARES if shares is None else shares[method]:
            net = copy.deepcopy(model)
            start = time.perf_counter()
            results = compress_low_rank(net, calib, include=LAYERS, params=share, **kwargs)
            seconds = time.perf_counter() - start
            acc = accuracy(net, data["test"])
            fit(net, data["target"], 1, 0.001, seed)
            rows.append(
                {
                    "seed": seed,
                    "method": method,
                    "ridge": kwargs.get("ridge", 0.0),
                    "share": share,
                    "kept": sum(r.params_after for r in results),
                    "dense": dense,
                    "ranks": [r.rank for r in results],
                    "base_acc": base,
                    "acc": acc,
                    "acc_ft": accuracy(net, data["test"]),
                    "seconds": round(seconds, 4),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def smallest_within(rows: list[dict[str, Any]], key: str, drop: float) -> int | None:
    """The fewest kept weights among budgets whose accuracy is within ``drop`` of the dense model."""
    ok = [r["kept"] for r in rows if r[key] >= r["base_acc"] - drop]
    return min(ok) if ok else None


def summarize(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    seeds = sorted({r["seed"] for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    lines = [
        "| fine-tune | drop | seed | " + " | ".join(methods) + " | SVD / DALR | SVD / best DALR |",
        "|---|---|---|" + "---|" * (len(methods) + 2),
    ]
    ratios: dict[tuple[str, float], list[float]] = {}
    best_ratios: dict[tuple[str, float], list[float]] = {}
    for key, label in (("acc", "none"), ("acc_ft", "1 epoch")):
        for drop in (0.01, 0.02, 0.05):
            for seed in seeds:
                kept = {
                    m: smallest_within([r for r in rows if r["seed"] == seed and r["method"] == m], key, drop)
                    for m in methods
                }
                dalrs = [v for m, v in kept.items() if m.startswith("dalr") and v]
                svd, dalr = kept.get("svd"), kept.get("dalr")
                ratio = svd / dalr if svd and dalr else math.nan
                best = svd / min(dalrs) if svd and dalrs else math.nan
                ratios.setdefault((key, drop), []).append(ratio)
                best_ratios.setdefault((key, drop), []).append(best)
                cells = " | ".join(f"{v:,}" if v else "-" for v in kept.values())
                lines.append(
                    f"| {label} | {100 * drop:.0f} pt | {seed} | {cells} | {ratio:.2f}x | {best:.2f}x |"
                )
    lines += ["", "Median over seeds of SVD's kept weights over DALR's (over the best DALR variant's):", ""]
    for (key, drop), values in ratios.items():
        label = "no fine-tune" if key == "acc" else "one-epoch fine-tune"
        best = statistics.median(best_ratios[(key, drop)])
        lines.append(
            f"- {label}, <= {100 * drop:.0f} pt drop: {statistics.median(values):.2f}x ({best:.2f}x)"
        )
    table = "\n".join(lines) + "\n"
    path.with_suffix(".md").write_text(table)
    _plot(rows, path.with_suffix(".png"))
    return table


def _plot(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, title in zip(axes, ("acc", "acc_ft"), ("no fine-tune", "one-epoch fine-tune"), strict=True):
        base = statistics.mean({r["seed"]: r["base_acc"] for r in rows}.values())
        for method in [m for m in METHODS if any(r["method"] == m for r in rows)]:
            points = sorted((r["share"], r["kept"], r[key]) for r in rows if r["method"] == method)
            shares = sorted({p[0] for p in points})
            kept = [statistics.mean(p[1] for p in points if p[0] == s) for s in shares]
            acc = [100 * statistics.mean(p[2] for p in points if p[0] == s) for s in shares]
            ax.plot(kept, acc, marker="o", markersize=3, label=method)
        ax.axhline(100 * base, color="k", lw=0.8, label="fine-tuned dense")
        ax.axhline(100 * base - 1, color="k", lw=0.8, ls="--", label="1 point below")
        ax.set_xscale("log")
        ax.set_ylim(100 * base - 15, 100 * base + 2)
        ax.set_xlabel("weights kept in the two hidden layers (mean of seeds)")
        ax.set_title(f"target test accuracy, {title}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def domain_arguments(doc: str | None, *, source_epochs: int, out: Path) -> argparse.ArgumentParser:
    """The arguments of a source -> target transfer benchmark: seeds, epochs, sizes, threads, output."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--source-epochs", type=int, default=source_epochs)
    parser.add_argument("--target-epochs", type=int, default=10)
    parser.add_argument("--target-train", type=int, default=3000)
    parser.add_argument("--calibration", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: deterministic)")
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--summarize", action="store_true", help="only summarize --out")
    parser.add_argument("--cache", type=Path, default=None, help="keep the fine-tuned models here")
    return parser


def main() -> None:
    parser = domain_arguments(__doc__, source_epochs=5, out=RESULTS / "dalr_transfer.jsonl")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--ridge", type=float, default=0.0, help="DALR ridge (all DALR methods)")
    run_and_summarize(parser.parse_args(), run, summarize)


def run_and_summarize(args: argparse.Namespace, run: Any, summarize: Any) -> None:
    """Append ``run(args, seed)``'s rows for every seed to ``args.out`` (unless ``--summarize``), then print
    ``summarize(args.out)``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.summarize:
        with args.out.open("a") as f:
            for seed in args.seeds:
                for row in run(args, seed):
                    f.write(json.dumps(row) + "\n")
    print(summarize(args.out))


if __name__ == "__main__":
    main()
