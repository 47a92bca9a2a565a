"""Flexible rank (Decomposable-Net) on Fashion-MNIST: one trained model taken at many sizes.

For each seed, the shipped config ``configs/flexible_<model>_fmnist.yaml`` and the plain model
(``configs/<model>_fmnist.yaml``) are trained for the epochs of the model's table (LeNet-300-100 30,
LeNet-5 12, the small ResNet 6); both are then taken at 50, 20, 10 and 5% of the parameters (LeNet-300-100)
or MACs (the conv nets) with ``take_sizes`` (for the plain model that is truncated SVD, baseline (a)),
and the first seed's flexible model at 24 sizes (the curve). Training cost: a separate phase runs the
two configs one after the other, twice, one thread, and compares the median epoch times.

    python benchmarks/flexible_rank.py --model lenet300_100 [--seeds 0 1 2] [--workers 2]

Rows go to ``results/flexible_rank_<model>.jsonl``; :func:`flexible_section` writes RESULTS.md's section,
with the best separately compressed model of each size (baseline (b)) read from the model's table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
SUPERSEDED = OUT / "superseded" / "group_sparsity_vs_peers_2026-12-02.jsonl"
MODELS = {  # config stem, size measure, epochs, the timing phase's overrides
    "lenet300_100": ("lenet300", "params", 30, ("trainer.max_epochs=3",)),
    "lenet5": ("lenet5", "macs", 12, ("trainer.max_epochs=1", "trainer.limit_train_batches=150")),
    "resnet_small": ("resnet_small", "macs", 6, ("trainer.max_epochs=1", "trainer.limit_train_batches=100")),
}
SHARES = (0.5, 0.2, 0.1, 0.05)
CURVE = tuple(round(0.04 * (1 / 0.04) ** (i / 23), 4) for i in range(24))


def _train(config: Path, out: Path, *overrides: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "lightning_compress.cli.main", "train", str(config), f"output_dir={out}"]
    proc = subprocess.run(
        [*cmd, "trainer.enable_progress_bar=false", *overrides], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout[proc.stdout.index("{") :])


def _sizes(checkpoint: str, shares: tuple[float, ...], by: str) -> list[dict]:
    """One row per share; a share the model cannot reach (its floors) is a row with its reason."""
    import torch

    from lightning_compress.config import ConfigError
    from lightning_compress.run.sizes import take_sizes

    torch.set_num_threads(1)
    rows = []
    for share in shares:
        try:
            rows += take_sizes(checkpoint, [share], by=by, progress=False)
        except ConfigError as err:
            rows.append({"by": by, "size": share, "unreachable": str(err)})
    return rows


def _configs(model: str) -> dict[str, Path]:
    stem = MODELS[model][0]
    return {
        "flexible": ROOT / "configs" / f"flexible_{stem}_fmnist.yaml",
        "plain": ROOT / "configs" / f"{stem}_fmnist.yaml",
    }


def timing(model: str, out: Path) -> dict:
    """Median fit time of the flexible config over the plain one, run in turn, twice (the same epochs)."""
    epochs: dict[str, list[float]] = {"plain": [], "flexible": []}
    quick = (*MODELS[model][3], "trainer.limit_val_batches=2", "trainer.limit_test_batches=2")
    for _ in range(2):
        for name, config in _configs(model).items():
            epochs[name].append(_train(config, out / "timing", *quick)["fit_seconds"])
    plain, flexible = statistics.median(epochs["plain"]), statistics.median(epochs["flexible"])
    return {"kind": "cost", "plain_epoch_s": plain, "flexible_epoch_s": flexible, "ratio": flexible / plain}


def _summary(folder: Path) -> dict:
    (path,) = folder.glob("*/*/summary.json")
    return json.loads(path.read_text())


def reused_timing(model: str, out: Path) -> dict:
    """:func:`timing` read back from the summaries an earlier run of this script left in ``out``."""
    times = {
        name: sorted(
            json.loads(p.read_text())["fit_seconds"]
            for p in (out / "timing" / config.stem).glob("*/summary.json")
        )
        for name, config in _configs(model).items()
    }
    plain, flexible = statistics.median(times["plain"]), statistics.median(times["flexible"])
    first = min(p.parent.name for p in (out / "timing").glob("*/*/summary.json"))  # the runs' folder stamps
    when = datetime.datetime.strptime(first, "%Y%m%d-%H%M%S").strftime("%Y-%m-%d %H:%M UTC")
    return {
        "kind": "cost", "plain_epoch_s": plain, "flexible_epoch_s": flexible, "ratio": flexible / plain,
        "measured": when,
    }  # fmt: skip


def run(model: str, seeds: list[int], workers: int, reuse: Path | None = None) -> list[dict]:
    """Train, then take the sizes. With ``reuse`` (the folder of an earlier run of this script), its fits
    and timing runs are read back and only what is missing is run."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = reuse or Path(tempfile.mkdtemp(prefix="flexible_rank_"))
    by, epochs = MODELS[model][1], MODELS[model][2]
    timed = len(list((out / "timing").glob("*/*/summary.json"))) >= 4
    rows = [
        {"model": model, "measured": stamp, **(reused_timing(model, out) if timed else timing(model, out))}
    ]
    jobs = [(name, config, seed) for seed in seeds for name, config in _configs(model).items()]

    def fit(job: tuple[str, Path, int]) -> tuple[tuple[str, Path, int], dict]:
        name, config, seed = job
        if list((out / f"{name}-{seed}").glob("*/*/summary.json")):
            return job, _summary(out / f"{name}-{seed}")
        return job, _train(config, out / f"{name}-{seed}", f"seed={seed}", f"trainer.max_epochs={epochs}")

    with ThreadPoolExecutor(workers) as pool:
        fits = list(pool.map(fit, jobs))
    for (name, _, seed), summary in fits:
        rows.append(
            {"kind": "fit", "model": model, "method": name, "seed": seed, "test_acc": summary["test_acc"],
             "params": summary["params"], "macs": summary["macs"], "fit_seconds": summary["fit_seconds"],
             "measured": stamp}
        )  # fmt: skip
        shares = CURVE if (name == "flexible" and seed == seeds[0]) else SHARES
        for size in _sizes(summary["final_checkpoint"], tuple(sorted(set(shares) | set(SHARES))), by):
            kept = {
                k: size[k]
                for k in (
                    "params",
                    "macs",
                    "test_acc",
                    "ranks",
                    "set_size_seconds",
                    "basis_seconds",
                    "unreachable",
                )
                if k in size
            }
            rows.append(
                {"kind": "size", "model": model, "method": name, "seed": seed, "by": by, "share": size["size"],
                 **kept, "measured": stamp}
            )  # fmt: skip
    return rows


def _best_separate(model: str, share: float) -> tuple[float, str] | None:
    """Baseline (b): the best of our rows in the model's table at >= 1 - share fewer parameters (MACs):
    LeNet-300-100's current table; for the conv nets the recorded table of 2026-12-02 (the best of its
    variants per cell) and, for the small ResNet, the size-target runs."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from summarize import _load_jsonl, _mine, front_cell
    from tables import TABLES

    level = round(1 - share, 4)
    candidates: list[tuple[float, str]] = []
    if model == "lenet300_100":
        table = next(t for t in TABLES if t.name == "lenet300_100_params")
        runs = _load_jsonl(OUT / "group_sparsity_vs_peers.jsonl")
        for row in table.rows:
            if row.label.startswith("ours") and (
                cell := front_cell(_mine(table, runs, row), level, table.key)
            ):
                candidates.append((cell[0], row.label))
    else:
        runs = [r for r in _load_jsonl(SUPERSEDED) if r.get("model") == model]
        if model == "resnet_small":
            runs += [
                r for r in _load_jsonl(OUT / "size_targets_resnet_small.jsonl") if r["method"] != "dense"
            ]
        for method in sorted({r["method"] for r in runs}):
            if method.startswith(("ours", "target")):
                mine = [r for r in runs if r["method"] == method]
                if cell := front_cell(mine, level, "removed_macs"):
                    candidates.append((cell[0], method))
    return max(candidates) if candidates else None


def _model_section(model: str, rows: list[dict]) -> list[str]:
    cost = next((r for r in rows if r["kind"] == "cost"), None)
    fits = [r for r in rows if r["kind"] == "fit"]
    sizes = [r for r in rows if r["kind"] == "size" and "test_acc" in r]
    by, epochs = MODELS[model][1], MODELS[model][2]

    def at(method: str, share: float) -> list[float]:
        return [r["test_acc"] for r in sizes if r["method"] == method and r["share"] == share]

    def cell(values: list[float]) -> str:
        if not values:
            return "-"
        spread = f" ± {statistics.stdev(values):.2%}" if len(values) > 1 else ""
        return f"{statistics.mean(values):.2%}{spread} ({len(values)})"

    seeds = sorted({r["seed"] for r in fits})
    what = "params" if by == "params" else "MACs"
    lines = [
        f"### {model}, by {what}",
        "",
        f"`configs/flexible_{MODELS[model][0]}_fmnist.yaml`, {epochs} epochs, seeds {seeds}; each size taken from "
        "the one trained model by `take_sizes` (no retraining, no fine-tuning); cells: mean ± sd (seeds).",
        "",
        f"| model | full size | 50% of the {what} | 20% | 10% | 5% |",
        "|---|---|---|---|---|---|",
    ]
    for method, label in (
        ("flexible", "flexible rank (one model)"),
        ("plain", "(a) truncated SVD of the plain model"),
    ):
        full = [r["test_acc"] for r in fits if r["method"] == method]
        lines.append(f"| {label} | {cell(full)} | " + " | ".join(cell(at(method, s)) for s in SHARES) + " |")
    best = [_best_separate(model, s) for s in SHARES]
    lines.append(
        "| (b) best separately compressed model of that size | - | "
        + " | ".join(f"{b[0]:.2%} (`{b[1]}`)" if b else "-" for b in best)
        + " |"
    )
    gone: dict[str, dict[float, str]] = {}
    for r in rows:
        if r["kind"] == "size" and "unreachable" in r and r["share"] in SHARES:
            gone.setdefault(r["method"], {})[r["share"]] = r["unreachable"].split(": ", 1)[-1]
    for method, why in sorted(gone.items()):
        shares = ", ".join(f"{s:.0%}" for s in sorted(why, reverse=True))
        lines += ["", f"`-`: {method} cannot be taken at {shares} of the {what}: {why[min(why)]}."]
    if cost:
        lines += [
            "",
            f"Training cost: {cost['flexible_epoch_s']:.2f} s against {cost['plain_epoch_s']:.2f} s for plain "
            f"training over the same steps, **{cost['ratio']:.2f}x** (medians of 2 runs each, one after the "
            f"other, one thread, {cost['measured']}).",
        ]
    seconds = [r["set_size_seconds"] for r in sizes if r["method"] == "flexible"]
    basis = [r["basis_seconds"] for r in sizes if r["method"] == "flexible" and "basis_seconds" in r]
    if seconds:
        lines += [
            "",
            f"Taking sizes: the SVD of every layer and the model's count once per model, median "
            f"{statistics.median(basis or [0.0]):.2f} s; then per size (ranks, splits, BatchNorm re-estimated on 50 "
            f"training batches) median {statistics.median(seconds):.3f} s, at most {max(seconds):.3f} s "
            f"({len(seconds)} sizes).",
        ]
    curve = sorted(
        (r for r in sizes if r["method"] == "flexible" and r["seed"] == seeds[0]), key=lambda r: r[by]
    )
    if curve:
        lines += [
            "",
            f"Seed {seeds[0]}'s one model at {len(curve)} sizes ({what}, test accuracy): "
            + ", ".join(f"{r[by]:,} {r['test_acc']:.2%}" for r in curve),
        ]
    return [*lines, ""]


def flexible_section() -> list[str]:
    """RESULTS.md's section (empty when nothing is recorded)."""
    lines: list[str] = []
    for model in MODELS:
        path = OUT / f"flexible_rank_{model}.jsonl"
        if path.is_file():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            lines += _model_section(model, rows)
    if not lines:
        return []
    bn = OUT / "flexible_rank_bn.json"
    if bn.is_file():
        summary = json.loads(bn.read_text())["summary"]
        cells = ", ".join(
            f"{n}: {100 * summary[f'0.5@{n}']['mean']:.2f}% (spread {100 * summary[f'0.5@{n}']['spread']:.2f}) / "
            f"{100 * summary[f'1@{n}']['mean']:.2f}% ({100 * summary[f'1@{n}']['spread']:.2f})"
            for n in (0, 5, 10, 20, 50, 100, 200)
        )
        lines += [
            "BatchNorm batches (`benchmarks/flexible_rank_bn.py`, the small ResNet's seed-0 model at 50% of its MACs / "
            f"at full size, test accuracy over 3 batch orders, spread = max - min; 0 keeps the trained statistics): "
            f"{cells}. 50 batches of 128 (the default) suffice; more do not help.",
            "",
        ]
    stale = OUT / "flexible_rank_staleness.json"
    if stale.is_file():
        st = json.loads(stale.read_text())
        same = ", ".join(f"{float(k):.0%}: {v:.0%}" for k, v in st["same_ranks_share"].items())
        lines += [
            f"SVD staleness (`benchmarks/flexible_rank_staleness.py`, LeNet-300-100, {st['epochs']} epochs, SVDs every "
            f"{st['svd_every']} steps, probed at {st['steps_probed']} steps, median {st['median_steps_since_svd']} "
            f"steps old): the ranks the stale singular values choose are the fresh ones' at rho {same} of the "
            f"steps; the low-rank weight from stale factors differs from the fresh truncation by "
            f"{st['stale_weight_error_median']:.2%} (median; 95th percentile {st['stale_weight_error_p95']:.2%}).",
            "",
        ]
    return ["## Flexible rank: one model, every size (`benchmarks/flexible_rank.py`)", "", *lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(MODELS), default="lenet300_100")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="the folder of an earlier run: its fits are read back, the rest run",
    )
    args = parser.parse_args()
    rows = run(args.model, args.seeds, args.workers, args.reuse)
    (OUT / f"flexible_rank_{args.model}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print("\n".join(flexible_section()))


if __name__ == "__main__":
    main()
