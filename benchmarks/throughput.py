"""Throughput: our training pipeline's epoch time over a plain PyTorch loop, and the demo sweep's trials/hour.

1. Epoch ratios, in one process. Our pipeline is ``run.train`` as ``lightning-compress train`` runs it
   (Classifier, the data module, EpochCheckpoint, CSV logs) on real Fashion-MNIST; a callback runs a plain
   PyTorch epoch (same architecture, optimizer, batch size, threads and in-memory tensors; train then
   validation) at the start of each of our epochs, so every one of our epochs is paired with a plain
   epoch run just before it and drift of the machine's speed hits both. Epoch 0 warms up; reported are
   the median of each and the median per-pair ratio. Variants: plain, ``GroupSparsity`` (a prox after
   every step, no removal), ``GroupSparsity`` + ``StructuredPruning`` (neurons removed every epoch, so
   our later epochs train a smaller model than the plain loop); and Lightning's own floor, a minimal
   LightningModule (a loss and nothing else) in a bare Trainer on the same data module. LeNet-5 and the small ResNet train on
   ``--conv-batches`` batches per epoch (both sides) and ``--conv-pairs`` pairs to keep the run short.
2. The demo sweep (``sweeps/lenet300_fmnist.yaml``, W&B offline) with 1 and 2 workers, for this tree and
   for ``--baseline`` (a git revision, checked out into a temporary worktree and run from there),
   alternating, ``--sweep-repeats`` times each; trials per hour = trials / wall seconds * 3600.
Usage: python benchmarks/throughput.py [--pairs 6] [--baseline abbcd8f] [--skip-sweep] [--models ...]
Writes benchmarks/results/throughput.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

from lightning_compress.config import load_config
from lightning_compress.run import train

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "throughput.json"
CONFIGS = {
    "lenet300_100": "lenet300_fmnist",
    "lenet5": "lenet5_fmnist",
    "resnet_small": "resnet_small_fmnist",
}
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "group_sparsity": {"group_sparsity": {"strength": 1e-3}},
    "structured_pruning": {"group_sparsity": {"strength": 1e-3}, "pruning": {"every_n_epochs": 1}},
}


class PlainTwin(Callback):
    """Before each of our epochs, one plain PyTorch epoch (train + validation) on a twin of the model."""

    def __init__(self, batches: int | None) -> None:
        self.batches = batches
        self.plain: list[float] = []
        self.ours: list[float] = []
        self._start: float | None = None

    def _close(self) -> None:
        if self._start is not None:
            self.ours.append(time.perf_counter() - self._start)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()
        if not hasattr(self, "twin"):
            inner = pl_module.model
            assert isinstance(inner, torch.nn.Module)
            self.twin: torch.nn.Module = copy.deepcopy(inner)
            opt = trainer.optimizers[0]
            self.opt = type(opt)(self.twin.parameters(), **opt.defaults)
        dm = trainer.datamodule  # type: ignore[attr-defined]
        self.plain.append(self._epoch(dm._train.images, dm._train.labels, dm._val.images, dm._val.labels, dm))
        self._start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def _epoch(self, xtr: Any, ytr: Any, xva: Any, yva: Any, dm: Any) -> float:
        start, size = time.perf_counter(), dm.batch_size
        self.twin.train()
        order = torch.randperm(len(ytr))
        limit = len(ytr) if self.batches is None else self.batches * size
        for i in range(0, min(limit, len(ytr)), size):
            idx = order[i : i + size]
            loss = F.cross_entropy(self.twin(xtr[idx]), ytr[idx])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.twin.eval()
        correct = torch.zeros(())
        limit = len(yva) if self.batches is None else self.batches * size
        with torch.inference_mode():
            for i in range(0, min(limit, len(yva)), size):
                correct += (self.twin(xva[i : i + size]).argmax(1) == yva[i : i + size]).sum()
        float(correct)
        return time.perf_counter() - start


class MinimalModule(pl.LightningModule):
    """The least a LightningModule can be: Lightning's own per-step cost, without ours."""

    def __init__(self, model: str) -> None:
        super().__init__()
        from lightning_compress.models.registry import build_model

        self.model = build_model(model)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return F.cross_entropy(self.model(batch[0]), batch[1])

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.model(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)


def lightning_floor(model: str, pairs: int) -> dict[str, Any]:
    """A minimal LightningModule in a bare Trainer (no logger, no checkpoints) against the plain loop."""
    from lightning_compress.data import FashionMNISTDataModule

    pl.seed_everything(0, verbose=False)
    dm = FashionMNISTDataModule(batch_size=128)
    twin = PlainTwin(None)
    trainer = pl.Trainer(
        max_epochs=pairs + 1,
        callbacks=[twin],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(MinimalModule(model), datamodule=dm)
    return _row(model, "lightning_minimal", None, twin)


def _row(model: str, variant: str, batches: int | None, twin: PlainTwin) -> dict[str, Any]:
    plain, ours = twin.plain[1:], twin.ours[1:]
    row = {
        "model": model,
        "variant": variant,
        "batches_per_epoch": batches or "all",
        "plain_s": round(statistics.median(plain), 4),
        "ours_s": round(statistics.median(ours), 4),
        "ratio_of_medians": round(statistics.median(ours) / statistics.median(plain), 3),
        "median_pair_ratio": round(statistics.median(o / p for o, p in zip(ours, plain, strict=True)), 3),
        "pairs": len(ours),
    }
    print(json.dumps(row), flush=True)
    return row


def epoch_ratio(model: str, variant: str, pairs: int, batches: int | None, out: Path) -> dict[str, Any]:
    overrides = [f"trainer.max_epochs={pairs + 1}", f"output_dir={out}", "trainer.enable_progress_bar=false"]
    if batches is not None:
        overrides += [f"trainer.limit_train_batches={batches}", f"trainer.limit_val_batches={batches}"]
        overrides += ["trainer.limit_test_batches=1"]
    cfg = load_config(
        ROOT / "configs" / f"{CONFIGS[model]}.yaml", overrides, extra=[{"compression": VARIANTS[variant]}]
    )
    twin = PlainTwin(batches)
    train(cfg, callbacks=[twin])
    return _row(model, variant, batches, twin)


def sweep_run(src: Path, workers: int, out: Path) -> dict[str, Any]:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(src)}
    cmd = [
        sys.executable,
        "-m",
        "lightning_compress.cli.main",
        "sweep",
        str(src / "sweeps" / "lenet300_fmnist.yaml"),
    ]
    cmd += [f"output_dir={out}", "--workers", str(workers)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=out, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"sweep from {src} failed: {proc.stderr[-2000:]}")
    return {"seconds": round(seconds, 2), "trials_per_hour": round(6 / seconds * 3600, 1)}


def sweeps(baseline: str, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        landed = Path(tmp) / "landed"
        subprocess.run(["git", "worktree", "add", "--detach", str(landed), baseline], cwd=ROOT, check=True)
        try:
            runs: dict[str, list[dict[str, Any]]] = {}
            for r in range(repeats):
                for workers in (1, 2):
                    for name, src in (("baseline", landed), ("this_tree", ROOT)):
                        out = Path(tmp) / f"{name}-{workers}-{r}"
                        out.mkdir()
                        res = sweep_run(src, workers, out)
                        runs.setdefault(f"{name}/workers={workers}", []).append(res)
                        print(name, workers, res, flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(landed)], cwd=ROOT, check=False)
    summary = {k: statistics.median(r["trials_per_hour"] for r in v) for k, v in runs.items()}
    gains = {
        w: round(summary[f"this_tree/workers={w}"] / summary[f"baseline/workers={w}"], 3) for w in (1, 2)
    }
    return {"baseline": baseline, "runs": runs, "median_trials_per_hour": summary, "gain": gains}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--models", nargs="+", default=list(CONFIGS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--conv-batches", type=int, default=40)
    parser.add_argument("--conv-pairs", type=int, default=3, help="pairs for LeNet-5 and the small ResNet")
    parser.add_argument("--baseline", default="abbcd8f")
    parser.add_argument("--sweep-repeats", type=int, default=2)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(2)
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "epochs": [],
    }
    if "lenet300_100" in args.models:
        result["epochs"].append(lightning_floor("lenet300_100", args.pairs))
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            batches = None if model == "lenet300_100" else args.conv_batches
            pairs = args.pairs if model == "lenet300_100" else args.conv_pairs
            for variant in args.variants:
                result["epochs"].append(epoch_ratio(model, variant, pairs, batches, Path(tmp)))
    if not args.skip_sweep:
        result["sweep"] = sweeps(args.baseline, args.sweep_repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.is_file():  # measured by hand beside this script (see RESULTS.md): kept
        kept = json.loads(args.out.read_text()).get("results_unchanged")
        if kept is not None:
            result["results_unchanged"] = kept
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
