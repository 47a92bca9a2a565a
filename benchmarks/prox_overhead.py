"""Training-time overhead of GroupSparsity with a prox after every optimizer step, in one process.

Alternates plain and regularized epochs (LeNet-300-100, real Fashion-MNIST, same batches) and reports the
median epoch time of each and their ratio. The regularized run does not prune, so both train the same
shapes. Usage: python benchmarks/prox_overhead.py [--epochs 5] [--model lenet300_100]
Writes benchmarks/results/prox_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from lightning_compress.callbacks import GroupSparsity
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


def epoch_times(
    model: str, epochs: int, regularize: bool, dm: FashionMNISTDataModule, every_n_steps: int = 1
) -> list[float]:
    pl.seed_everything(0, verbose=False)
    module = Classifier(model, lr=0.05, scheduler="none")
    timer = EpochTimer()
    # strength small enough that nothing is zeroed: the same shapes train in both runs
    gs = GroupSparsity(1e-6, every_n_steps=every_n_steps, log_effective_size=False)
    callbacks: list[Callback] = [gs] if regularize else []
    trainer = pl.Trainer(
        max_epochs=epochs,
        callbacks=[*callbacks, timer],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
    )
    trainer.fit(module, dm)
    return timer.times[1:]  # the first epoch warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="lenet300_100")
    parser.add_argument("--every-n-steps", type=int, default=1)
    args = parser.parse_args()
    dm = FashionMNISTDataModule(batch_size=128)
    plain: list[float] = []
    prox: list[float] = []
    for r in range(args.rounds):  # alternate the order so drift hits both
        first, second = (False, True) if r % 2 == 0 else (True, False)
        for regularize in (first, second):
            (prox if regularize else plain).extend(
                epoch_times(args.model, args.epochs, regularize, dm, args.every_n_steps)
            )
    row = {
        "model": args.model,
        "every_n_steps": args.every_n_steps,
        "plain_epoch_s_median": round(statistics.median(plain), 3),
        "prox_epoch_s_median": round(statistics.median(prox), 3),
        "ratio": round(statistics.median(prox) / statistics.median(plain), 3),
        "epochs_timed_each": len(plain),
        "plain_epoch_s": [round(t, 3) for t in plain],
        "prox_epoch_s": [round(t, 3) for t in prox],
        "steps_per_epoch": 430,
        "torch_threads": torch.get_num_threads(),
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results[f"{args.model}/every_{args.every_n_steps}_steps"] = row
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
