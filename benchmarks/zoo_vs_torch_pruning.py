"""Users' models on Fashion-MNIST: our group lasso against Torch-Pruning on the same model, by MACs removed.

Models (built from their libraries' constructors, no weights downloaded; ``make zoo`` installs them):

  resnet18  torchvision ``resnet18`` with ``conv1`` a 3x3 stride-2 conv over one grey channel (28x28 input;
            the max-pool stays: 7x7 maps in the first stage), 10 classes
  vit       timm ``VisionTransformer``: 28x28 grey images in 7x7 patches (16 tokens and a class token),
            width 192, 3 heads, depth 4, MLP ratio 4

Every run trains ``--epochs`` epochs on the same ``--train-size`` images of the training split (a seeded
subset, the same for every method), batch 128; SGD momentum 0.9, lr 0.05 cosine, wd 5e-4 for resnet18;
AdamW lr 1e-3 cosine, wd 0.05 for the ViT. Test accuracy on the whole test split. Methods:

  dense         the baseline
  group_lasso   trimmed group lasso (``GroupSparsity(strength, keep_ratio=keep)``: the largest ``keep`` share of
                each family is not penalized), prox after every step until two thirds of the budget, zeroed
                groups removed every epoch (``StructuredPruning``); the last third fine-tunes
  target        ``GroupSparsity(target_macs=level, keep_ratio=floor, cost="macs")``: steered to ``level`` of
                the dense MACs by two thirds of the budget (``--deadline``), floors at ``floor = 0.8 *
                sqrt(level)`` (80% of the uniform width that meets the target; ``--floor-factor``; either
                changed is recorded in the method's name), zeroed groups removed every epoch;
                ``target_adamw``: the same with AdamW (lr 1e-3, wd 5e-4, cosine) for resnet18;
                ``target_params_cost`` (``_adamw``): groups weighted by parameters (``cost="params"``, the
                default) instead of MACs; ``dense_adamw``, ``group_lasso_adamw``: dense and group_lasso
                with that AdamW
  tp_magnitude  Torch-Pruning MagnitudePruner (L2): half the epochs dense, one-shot prune to channel ratio
                ``ratio``, fine-tune the other half
  tp_groupnorm  Torch-Pruning GroupNormPruner: half the epochs sparse training (``pruner.regularize``), prune,
                fine-tune the other half

A job is ``model:method:level[:strength]`` (``level``: the keep share for group_lasso, the channel ratio for
the peers; ``strength``: group_lasso's, else ``--strength``).

Usage: python benchmarks/zoo_vs_torch_pruning.py --jobs resnet18:dense:0 resnet18:group_lasso:0.7 ... [--seeds 0 1 2]
Results are appended to benchmarks/results/zoo_vs_torch_pruning.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
import torch_pruning as tp
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lightning_compress import CompressibleMixin, GroupSparsity, StructuredPruning  # noqa: E402
from lightning_compress.data import FashionMNISTDataModule  # noqa: E402
from lightning_compress.surgery import count_params_and_macs, kept_modes  # noqa: E402
from tests.zoo import zoo  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "zoo_vs_torch_pruning.jsonl"
X = torch.zeros(1, 1, 28, 28)


def build(model: str) -> nn.Module:
    """The model, as a user adapts it to 28x28 grey images."""
    if model == "resnet18":
        net = zoo("torchvision").models.resnet18(num_classes=10)
        net.conv1 = nn.Conv2d(1, 64, 3, stride=2, padding=1, bias=False)
        return net
    if model == "vit":
        vit = zoo("timm").models.vision_transformer.VisionTransformer
        return vit(img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=192, depth=4, num_heads=3)
    raise ValueError(f"unknown model {model!r}")


class UserModule(CompressibleMixin, pl.LightningModule):
    """A user's LightningModule around a zoo model."""

    def __init__(self, model: str, epochs: int, optimizer: str = "") -> None:
        super().__init__()
        self.kind, self.epochs, self.optimizer = model, epochs, optimizer
        self.net = build(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        return F.cross_entropy(self(batch[0]), batch[1])

    def configure_optimizers(self) -> Any:
        if self.kind == "vit":
            opt: torch.optim.Optimizer = torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=0.05)
        elif self.optimizer == "adamw":
            opt = torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=5e-4)
        else:
            opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        steps = int(self.trainer.estimated_stepping_batches)
        return {
            "optimizer": opt,
            "lr_scheduler": {
                "scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps),
                "interval": "step",
            },
        }


def loaders(train_size: int, seed: int) -> tuple[DataLoader, DataLoader]:
    dm = FashionMNISTDataModule(batch_size=128, val_size=0)
    dm.setup("fit")
    dm.setup("test")
    train: Any = dm.train_dataloader().dataset
    test: Any = dm.test_dataloader().dataset
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(1234))[:train_size]
    x, y = train[pick]  # the same images for every method and seed; the order is the seed's
    gen = torch.Generator().manual_seed(seed)
    fit = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True, generator=gen)
    tx, ty = test[torch.arange(len(test))]
    return fit, DataLoader(TensorDataset(tx, ty), batch_size=500)


def fit(module: UserModule, data: DataLoader, epochs: int, callbacks: list[Callback]) -> None:
    trainer = pl.Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, data)


@torch.no_grad()
def accuracy(module: UserModule, data: DataLoader) -> float:
    module.eval()
    right = sum(int((module(x).argmax(1) == y).sum()) for x, y in data)
    dataset: Any = data.dataset
    return right / len(dataset)


class _Regularize(Callback):
    def __init__(self, pruner: Any) -> None:
        self.pruner = pruner

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.pruner.regularize(pl_module.net)


def torch_pruning(module: UserModule, data: DataLoader, method: str, ratio: float, epochs: int) -> None:
    net, half = module.net, epochs // 2
    kwargs: dict[str, Any] = {
        "pruning_ratio": ratio,
        "ignored_layers": [net.fc if hasattr(net, "fc") else net.head],
    }
    attention: list[Any] = [m for m in net.modules() if hasattr(m, "qkv") and hasattr(m, "num_heads")]
    if attention:  # Torch-Pruning's timm ViT recipe: head dims pruned, the head count kept
        kwargs["num_heads"] = {m.qkv: m.num_heads for m in attention}
        kwargs["prune_head_dims"] = True
        kwargs["prune_num_heads"] = False
    importance = tp.importance.GroupMagnitudeImportance(p=2)
    with kept_modes(net):
        if method == "tp_magnitude":
            pruner: Any = tp.pruner.MagnitudePruner(net, X, importance=importance, **kwargs)
        else:
            pruner = tp.pruner.GroupNormPruner(net, X, importance=importance, reg=1e-4, **kwargs)
    fit(module, data, half, [_Regularize(pruner)] if method == "tp_groupnorm" else [])
    with kept_modes(net):
        pruner.step()
    for m in attention:
        m.head_dim = m.qkv.out_features // (3 * m.num_heads)
        m.attn_dim = m.num_heads * m.head_dim
    fit(module, data, epochs - half, [])


def run(
    model: str,
    method: str,
    level: float,
    seed: int,
    epochs: int,
    train_size: int,
    strength: float,
    floor_factor: float = 0.8,
    deadline: float = 2 / 3,
) -> dict:
    pl.seed_everything(seed, verbose=False)
    module = UserModule(model, epochs, "adamw" if method.endswith("_adamw") else "")
    data, test = loaders(train_size, seed)
    params, macs = count_params_and_macs(module.net, X)
    start = time.perf_counter()
    if method in ("dense", "dense_adamw"):
        fit(module, data, epochs, [])
    elif method in ("group_lasso", "group_lasso_adamw"):
        sparsity = GroupSparsity(
            strength, keep_ratio=level, stop_epoch=2 * epochs // 3, log_effective_size=False
        )
        fit(module, data, epochs, [sparsity, StructuredPruning(every_n_epochs=1)])
    elif method in ("target", "target_adamw", "target_params_cost", "target_params_cost_adamw"):
        floor = round(floor_factor * level**0.5, 2)
        cost: Literal["params", "macs"] = "params" if "params_cost" in method else "macs"
        stop = max(1, round(deadline * epochs))
        sparsity = GroupSparsity(target_macs=level, keep_ratio=floor, cost=cost, stop_epoch=stop)
        fit(module, data, epochs, [sparsity, StructuredPruning(every_n_epochs=1)])
    elif method in ("tp_magnitude", "tp_groupnorm"):
        torch_pruning(module, data, method, level, epochs)
    else:
        raise ValueError(f"unknown method {method!r}")
    seconds = time.perf_counter() - start
    after = count_params_and_macs(module.net, X)
    named = method
    if method.startswith("target") and floor_factor != 0.8:
        named += f"_floor{floor_factor:g}"
    if method.startswith("target") and abs(deadline - 2 / 3) > 1e-9:
        named += f"_deadline{deadline:.2g}"
    return {
        "model": model,
        "method": named,
        "level": level,
        "strength": strength if method.startswith("group_lasso") else None,
        "seed": seed,
        "epochs": epochs,
        "train_size": train_size,
        "test_acc": round(accuracy(module, test), 4),
        "params": after[0],
        "macs": after[1],
        "removed_params": round(1 - after[0] / params, 4),
        "removed_macs": round(1 - after[1] / macs, 4),
        "fit_seconds": round(seconds, 1),
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", nargs="+", required=True, help="model:method:level[:strength]")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-size", type=int, default=8_000)
    parser.add_argument("--strength", type=float, default=1e-3, help="group_lasso's strength")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--deadline", type=float, default=2 / 3, help="target methods: the share of the epochs to reach it by"
    )
    parser.add_argument(
        "--floor-factor", type=float, default=0.8, help="target methods: keep_ratio = this * sqrt(level)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for job in args.jobs:
            model, method, level, *strength = job.split(":")
            lasso = float(strength[0]) if strength else args.strength
            row = run(
                model,
                method,
                float(level),
                seed,
                args.epochs,
                args.train_size,
                lasso,
                args.floor_factor,
                args.deadline,
            )
            print(json.dumps(row), flush=True)
            with args.out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
