"""Adam + L2 + ReLU leaves near-zero neurons (Yaguchi et al. 2018): a wide MLP without BatchNorm.

Trains a 784-1000-1000-10 MLP on Fashion-MNIST with four set-ups (Adam + L2 on ReLU, SGD + L2 on ReLU,
Adam without L2 on ReLU, Adam + L2 on tanh), then counts neurons whose incoming-group norm is at most
``--relative-threshold`` times the largest of their layer, removes them (StructuredPruning's rule, with
constant outputs folded into the next bias) and re-tests.
Usage: python benchmarks/adam_sparsity.py [--epochs 10]; writes benchmarks/results/adam_sparsity.json.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from lightning_compress.data import FashionMNISTDataModule
from lightning_compress.models import Classifier
from lightning_compress.surgery import compress_zero_groups, neuron_report

OUT = Path(__file__).resolve().parent / "results" / "adam_sparsity.json"
SETUPS = {
    "adam_l2_relu": dict(optimizer="adam", lr=1e-3, weight_decay=5e-4, act=nn.ReLU),
    "sgd_l2_relu": dict(optimizer="sgd", lr=0.05, weight_decay=5e-4, act=nn.ReLU),
    "adam_nol2_relu": dict(optimizer="adam", lr=1e-3, weight_decay=0.0, act=nn.ReLU),
    "adam_l2_tanh": dict(optimizer="adam", lr=1e-3, weight_decay=5e-4, act=nn.Tanh),
}


def mlp(act: type[nn.Module]) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 1000), act(), nn.Linear(1000, 1000), act(), nn.Linear(1000, 10)
    )


def test_acc(module: Classifier, dm: FashionMNISTDataModule) -> float:
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    return float(trainer.test(module, dm, verbose=False)[0]["test/acc"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--relative-threshold", type=float, default=1e-3)
    parser.add_argument("--setups", nargs="*", default=list(SETUPS))
    args = parser.parse_args()
    dm = FashionMNISTDataModule(batch_size=128)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name in args.setups:
        setup: dict[str, Any] = dict(SETUPS[name])
        pl.seed_everything(0, verbose=False)
        module = Classifier(mlp(setup.pop("act")), scheduler="cosine", **setup)
        trainer = pl.Trainer(
            max_epochs=args.epochs,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
        )
        trainer.fit(module, dm)
        acc = test_acc(module, dm)
        rows = neuron_report(
            module.model, torch.zeros(1, 1, 28, 28), relative_threshold=args.relative_threshold
        )
        near = sum(r["near_zero"] for r in rows)
        before = module.size()["params"]
        compress_zero_groups(
            module.model, torch.zeros(1, 1, 28, 28), relative_threshold=args.relative_threshold
        )
        results[name] = {
            "epochs": args.epochs,
            "relative_threshold": args.relative_threshold,
            "near_zero_neurons": near,
            "near_zero_fraction": round(near / 2000, 4),
            "per_layer": {r["layer"]: r["near_zero"] for r in rows},
            "test_acc": round(acc, 4),
            "test_acc_after_removal": round(test_acc(module, dm), 4),
            "params": before,
            "params_after_removal": module.size()["params"],
            "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }
        print(name, json.dumps(results[name]), flush=True)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
