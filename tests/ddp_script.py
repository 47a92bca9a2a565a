"""Two-process CPU DDP run used by test_ddp.py: python ddp_script.py OUT_DIR (Lightning starts rank 1)."""

from __future__ import annotations

import faulthandler
import sys

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_compress._compat import close_process_group
from lightning_compress.callbacks import (
    FlexibleRank,
    GroupSparsity,
    LowRank,
    LowRankCompression,
    StructuredPruning,
)
from lightning_compress.models import Classifier
from lightning_compress.surgery import capture_inputs, get_history, input_statistics


class _RankLog(pl.Callback):
    """The ranks FlexibleRank chose at each step."""

    def __init__(self) -> None:
        self.ranks: list[dict[str, int]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        flexible = next(c for c in trainer.callbacks if isinstance(c, FlexibleRank))  # type: ignore[attr-defined]
        self.ranks.append(dict(flexible.last_ranks))


def main(out: str, method: str = "group_sparsity") -> None:
    faulthandler.enable()  # a native crash (gloo, DDP re-wrap) prints its stack instead of dying silently
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(128, 1, 28, 28, generator=gen), torch.randint(0, 10, (128,), generator=gen)
    )
    module = Classifier("lenet300_100", model_kwargs={"hidden": [32, 16]}, lr=0.1)
    if method == "transformer":  # heads, MLP units and the residual width, removed under DDP
        small = {"dim": 16, "depth": 2, "heads": 4, "mlp": 32}
        module = Classifier("transformer_small", model_kwargs=small, optimizer="adamw", lr=3e-3)
    callbacks: dict[str, list[pl.Callback]] = {
        "transformer": [
            GroupSparsity(50.0, keep_ratio=0.5, log_effective_size=False),
            StructuredPruning(epochs=[0, 1]),
        ],
        "group_sparsity": [
            GroupSparsity(0.05, log_effective_size=False),
            StructuredPruning(epochs=[0, 1], min_width=4),
        ],
        "low_rank": [LowRank(2.0, every_n_steps=2, split_epochs=[0], split_at_fit_end=False)],
        # each rank draws the ratio and chooses the ranks from its own copy of the (equal) weights
        "flexible": [FlexibleRank(ratio_range=(0.1, 0.6), min_rank=1, svd_every=2), _RankLog()],
        "flexible_alternate": [
            FlexibleRank(ratio_range=(0.1, 0.6), min_rank=1, grad="exact", passes="alternate"),
            _RankLog(),
        ],
        # a size target: each rank chooses the groups from its own copy of the (equal) weights
        "target": [GroupSparsity(target_params=0.4, stop_epoch=2), StructuredPruning(every_n_epochs=1)],
        # each rank calibrates on its own shard: the statistics are all-reduced, rank 0 decides
        "dalr": [
            LowRankCompression(
                "dalr",
                params=0.3,
                at_epoch=0,
                data=lambda tr: DataLoader(data.tensors[0][tr.global_rank :: 2], batch_size=16),
            )
        ],
    }
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=3,
        callbacks=callbacks[method],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, DataLoader(data, batch_size=16))
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    if method.startswith("flexible"):
        log = next(c for c in callbacks[method] if isinstance(c, _RankLog))
        torch.save({"state": state, "ranks": log.ranks}, f"{out}/rank{trainer.global_rank}.pt")
        close_process_group(trainer)
        return
    if method in ("transformer", "target"):
        torch.save({"state": state, "history": get_history(module)}, f"{out}/rank{trainer.global_rank}.pt")
        close_process_group(trainer)
        return
    # activation statistics over each rank's own shard: reduced, every rank must hold the sum of both
    shard = data.tensors[0][trainer.global_rank :: 2]
    # split layers: their first half
    names = [
        n + ".0" if isinstance(module.model.get_submodule(n), torch.nn.Sequential) else n for n in ("1", "3")
    ]
    stats = input_statistics(module.model, names, DataLoader(shard, batch_size=16))
    local = capture_inputs(module.model, names[:1], shard)[names[0]].double()
    torch.save(
        {
            "state": state,
            "history": get_history(module),
            "xxt": {k.split(".")[0]: s.xxt for k, s in stats.items()},
            "count": stats[names[1]].count,
            "local_xxt": local.T @ local,
        },
        f"{out}/rank{trainer.global_rank}.pt",
    )
    close_process_group(trainer)


if __name__ == "__main__":
    main(*sys.argv[1:])
