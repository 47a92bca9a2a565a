"""Training-time overhead of GroupSparsity (a prox after every optimizer step) or LowRank, in one process.

One fit alternates epochs with and without the prox (LeNet-300-100, real Fashion-MNIST, same batches):
each regularized epoch is paired with the plain epoch before it, so drift of the machine's speed hits
both sides of a pair. Reports the median epoch time of each, the ratio of the medians and the median of
the per-pair ratios. The strength is too small to zero anything, so both train the same shapes.
Also times every prox call inside training: their sum per prox epoch over the median plain epoch is
the prox's own share, free of the epoch-to-epoch noise. And one prox call in isolation (median of 5
blocks of 1000 calls on the same model, back to back): a call inside training costs several times that.
Usage: python benchmarks/prox_overhead.py [--pairs 12] [--model lenet300_100] [--every-n-steps 1] [--keep-ratio 0.1]
       [--method low_rank --every-n-steps 100] (LowRank at its default schedule: an SVT every 100 steps)
Writes benchmarks/results/prox_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from lightning_compress.callbacks import GroupSparsity, LowRank
from lightning_compress.callbacks._proximal import ProximalCallback
from lightning_compress.data import FashionMNISTDataModule
from lightning_compress.models import Classifier

OUT = Path(__file__).resolve().parent / "results" / "prox_overhead.json"


class EpochTimer(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.times.append(time.perf_counter() - self._start)


def alternating(base: type[ProximalCallback]) -> type[ProximalCallback]:
    """``base`` in force on even epochs from epoch 2 (epoch 0 warms up, odd epochs are plain)."""

    class Alternating(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.call_s: list[float] = []

        def factor(self) -> float:
            return float(self._epoch > 0 and self._epoch % 2 == 0)

        def prox(self, pl_module: pl.LightningModule, step: float) -> None:
            """The prox, timed where it runs: inside training, after the optimizer step (CPU: synchronous)."""
            start = time.perf_counter()
            super().prox(pl_module, step)
            if self.factor():
                self.call_s.append(time.perf_counter() - start)

    return Alternating


def make_callback(method: str, every_n_steps: int, keep_ratio: float, alternate: bool) -> Any:
    """The regularizer callback at a strength too small to zero anything: every epoch trains the same shapes.

    ``low_rank`` never splits (``split_at_fit_end=False``): the SVD every ``every_n_steps`` is the cost.
    """
    if method == "low_rank":
        low: Any = alternating(LowRank) if alternate else LowRank
        return low(1e-6, every_n_steps=every_n_steps, split_at_fit_end=False)
    gs: Any = alternating(GroupSparsity) if alternate else GroupSparsity
    return gs(1e-6, every_n_steps=every_n_steps, keep_ratio=keep_ratio, log_effective_size=False)


def paired_epoch_times(
    model: str,
    pairs: int,
    dm: FashionMNISTDataModule,
    every_n_steps: int = 1,
    keep_ratio: float = 0.0,
    method: str = "group_sparsity",
) -> tuple[list[float], list[float], list[float]]:
    """(plain, prox) epoch times of one fit, and the time of every prox call in the prox epochs.

    Epoch 0 warms up, then plain (odd) and prox (even) epochs alternate.
    """
    pl.seed_everything(0, verbose=False)
    module = Classifier(model, lr=0.05, scheduler="none")
    timer = EpochTimer()
    gs = make_callback(method, every_n_steps, keep_ratio, alternate=True)
    trainer = pl.Trainer(
        max_epochs=1 + 2 * pairs,
        callbacks=[gs, timer],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
    )
    trainer.fit(module, dm)
    times = timer.times[1:]
    return times[0::2], times[1::2], gs.call_s


def prox_call_us(model: str, every_n_steps: int, keep_ratio: float, method: str = "group_sparsity") -> float:
    """Median over 5 blocks of the time of one prox call, in microseconds."""
    module = Classifier(model)
    gs = make_callback(method, every_n_steps, keep_ratio, alternate=False)
    calls = 1000 if method == "group_sparsity" else 20
    for _ in range(calls // 5):
        gs.prox(module, 0.05)
    blocks = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            gs.prox(module, 0.05)
        blocks.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--model", default="lenet300_100")
    parser.add_argument("--every-n-steps", type=int, default=1)
    parser.add_argument("--method", choices=["group_sparsity", "low_rank"], default="group_sparsity")
    parser.add_argument(
        "--keep-ratio", type=float, default=0.0, help="trimmed lasso: a top-k per layer per step"
    )
    args = parser.parse_args()
    dm = FashionMNISTDataModule(batch_size=128)
    plain, prox, calls = paired_epoch_times(
        args.model, args.pairs, dm, args.every_n_steps, args.keep_ratio, args.method
    )
    pair_ratios = [b / a for a, b in zip(plain, prox, strict=True)]
    row = {
        "model": args.model,
        "method": args.method,
        "every_n_steps": args.every_n_steps,
        "keep_ratio": args.keep_ratio,
        "plain_epoch_s_median": round(statistics.median(plain), 3),
        "prox_epoch_s_median": round(statistics.median(prox), 3),
        "ratio": round(statistics.median(prox) / statistics.median(plain), 3),
        "median_pair_ratio": round(statistics.median(pair_ratios), 3),
        "epochs_timed_each": len(plain),
        "in_training_call_us_median": round(statistics.median(calls) * 1e6, 1),
        # the prox's own cost inside training over the plain epoch: free of the epoch-to-epoch noise
        "in_training_ratio": round(1 + sum(calls) / len(prox) / statistics.median(plain), 3),
        "prox_call_us": round(prox_call_us(args.model, args.every_n_steps, args.keep_ratio, args.method), 1),
        "plain_epoch_s": [round(t, 3) for t in plain],
        "prox_epoch_s": [round(t, 3) for t in prox],
        "steps_per_epoch": 430,
        "torch_threads": torch.get_num_threads(),
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    key = (
        "low_rank/" if args.method == "low_rank" else ""
    ) + f"{args.model}/every_{args.every_n_steps}_steps"
    results[key + (f"/keep_{args.keep_ratio:g}" if args.keep_ratio else "")] = row
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
