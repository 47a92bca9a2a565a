"""How stale may the SVDs of flexible-rank training be? LeNet-300-100, Fashion-MNIST, the shipped config.

Trains ``configs/flexible_lenet300_fmnist.yaml`` for 10 epochs with a probe that, at every step from
the second epoch on, takes the SVDs afresh and compares them with the last ones the callback took
(``svd_every`` steps ago at most): how often the ranks chosen at rho = 0.05, 0.1 and 0.2 are the same,
and the relative difference between the low-rank weights made from the stale factors (the projection
the callback uses) and from fresh ones.

    python benchmarks/flexible_rank_staleness.py   # -> results/flexible_rank_staleness.json
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_compress.callbacks import FlexibleRank
from lightning_compress.config import build_callbacks, build_datamodule, build_module, load_config
from lightning_compress.functional.flexible_rank import global_ranks, low_rank_weight, svd_factors
from lightning_compress.surgery import flexible_layers

ROOT = Path(__file__).resolve().parents[1]
RATIOS = (0.05, 0.1, 0.2)


class Probe(pl.Callback):
    """After each step's backward (the flexible callback's factors as they are), fresh SVDs compared."""

    def __init__(self, flexible: FlexibleRank) -> None:
        self.flexible = flexible
        self.same = {r: 0 for r in RATIOS}
        self.steps = 0
        self.errors: list[float] = []
        self.ages: list[int] = []

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        layers: dict[str, Any] = flexible_layers(pl_module)
        if trainer.current_epoch == 0 or not layers or any(x.factors is None for x in layers.values()):
            return
        fresh = {n: svd_factors(x.weight.detach().reshape(x.weight.shape[0], -1)) for n, x in layers.items()}
        self.steps += 1
        self.ages.append(trainer.global_step - (self.flexible._refreshed or 0))
        for ratio in RATIOS:
            old = global_ranks({n: x.factors[1] for n, x in layers.items()}, ratio, self.flexible.min_rank)
            new = global_ranks({n: f[1] for n, f in fresh.items()}, ratio, self.flexible.min_rank)
            self.same[ratio] += old == new
        with torch.no_grad():
            for n, x in layers.items():
                rank = global_ranks({k: f[1] for k, f in fresh.items()}, 0.1, self.flexible.min_rank)[n]
                stale = low_rank_weight(x.weight.detach(), x.factors, rank)
                exact = low_rank_weight(x.weight.detach(), fresh[n], rank)
                self.errors.append(float((stale - exact).norm() / exact.norm()))


def main() -> None:
    torch.set_num_threads(1)
    cfg = load_config(ROOT / "configs" / "flexible_lenet300_fmnist.yaml", ["trainer.max_epochs=10"])
    pl.seed_everything(cfg.seed)
    datamodule = build_datamodule(cfg.data)
    module = build_module(cfg)
    callbacks = build_callbacks(cfg.compression)
    flexible = next(c for c in callbacks if isinstance(c, FlexibleRank))
    probe = Probe(flexible)
    trainer = pl.Trainer(
        max_epochs=10, callbacks=[*callbacks, probe], logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    result = {
        "config": "configs/flexible_lenet300_fmnist.yaml",
        "epochs": 10,
        "svd_every": flexible.svd_every,
        "steps_probed": probe.steps,
        "median_steps_since_svd": statistics.median(probe.ages),
        "same_ranks_share": {str(r): probe.same[r] / probe.steps for r in RATIOS},
        "stale_weight_error_median": statistics.median(probe.errors),
        "stale_weight_error_p95": sorted(probe.errors)[int(0.95 * len(probe.errors))],
    }
    (ROOT / "benchmarks" / "results" / "flexible_rank_staleness.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
