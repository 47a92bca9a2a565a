"""Our recipes against the peers: parameters (or MACs) physically removed vs test accuracy, same budget.

Every run trains ``--epochs`` epochs in total (SGD momentum 0.9, lr 0.05 cosine, wd 1e-4 for LeNet-300-100,
5e-4 otherwise; the transformer: AdamW lr 2e-3 cosine, wd 0.05). A job is ``NAME:LEVEL``:

  <recipe>     a recipe file, ``benchmarks/recipes/<recipe>.yaml`` (or a path to any YAML file): the same
               ``compression`` section a run config holds, with ``${level}`` standing for LEVEL (the lasso
               strength; ``${kept}`` for 1 - LEVEL; ``${floor}`` for 0.8 * sqrt(LEVEL), 80% of the uniform
               width that meets a size target of LEVEL) and ``${budget.third}``, ``${budget.half}``,
               ``${budget.two_thirds}`` for that share of the epoch budget (``${budget.last_of_first_half}``:
               the 0-based index of the first half's last epoch); ``refit: true`` runs the peers' schedule (a first fit of half
               the budget with the recipe, then a second fit, with a new optimizer, fine-tunes);
               ``training:`` replaces the SGD settings (``Classifier`` arguments, e.g. ``{optimizer: adamw}``)
  dense        the baseline (LEVEL ignored)
  tp_magnitude Torch-Pruning MagnitudePruner (L2 group importance): half the epochs dense, one-shot prune
               to the channel ratio LEVEL, fine-tune the other half (the transformer: its residual width,
               attention head dims and MLP units, rounded to multiples of the head count)
  tp_groupnorm Torch-Pruning GroupNormPruner: half the epochs sparse training (pruner.regularize), prune,
               fine-tune the other half
  scratch      the small architecture of --widths (LeNet-300-100 hidden widths), trained from scratch for
               the whole budget: what the found architecture is worth without the compression run
  lt_pruning   Lightning ModelPruning (ln_structured, L1, rows) at mid-training, fine-tuned with the
               masks, then zero rows removed physically (constant neurons folded into the next bias)
  svd          post-hoc truncated SVD: half the epochs dense, every hidden layer split in two at the
               largest rank keeping at most 1 - LEVEL of its parameters, fine-tune the other half

Usage: python benchmarks/group_sparsity_vs_peers.py [--epochs 30] [--jobs group_lasso:0.001 tp_magnitude:0.9 ...]
       python benchmarks/group_sparsity_vs_peers.py --table lenet300_100_params   (every run of a table, tables.py)
Results are appended to benchmarks/results/group_sparsity_vs_peers.jsonl, one line per run; the method
recorded for a recipe is its file name.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch_pruning as tp
from lightning.pytorch.callbacks import Callback, ModelPruning

from lightning_compress.config import CompressionConfig, build_callbacks, load_config
from lightning_compress.data import FashionMNISTDataModule
from lightning_compress.functional import choose_rank
from lightning_compress.models import Classifier
from lightning_compress.surgery import factorize_layer, find_groups, kept_modes, layer_widths, remove_groups

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import TABLES, jobs

OUT = Path(__file__).resolve().parent / "results" / "group_sparsity_vs_peers.jsonl"
RECIPES = Path(__file__).resolve().parent / "recipes"
X = torch.zeros(1, 1, 28, 28)
DEFAULT_JOBS = [
    "dense:0",
    *(f"group_lasso:{s}" for s in (0.0003, 0.001, 0.002, 0.004, 0.008)),
    *(f"{m}:{r}" for m in ("tp_magnitude", "tp_groupnorm", "lt_pruning") for r in (0.5, 0.8, 0.9, 0.95)),
]


def _module(
    seed: int, model: str, widths: list[int] | None = None, optimizer: dict[str, Any] | None = None
) -> Classifier:
    pl.seed_everything(seed, verbose=False)
    if model == "transformer_small":
        return Classifier(model, optimizer="adamw", lr=2e-3, weight_decay=0.05, scheduler="cosine")
    wd = 1e-4 if model == "lenet300_100" else 5e-4
    kwargs = {"hidden": widths} if widths else {}
    settings: dict[str, Any] = {"lr": 0.05, "momentum": 0.9, "weight_decay": wd, "scheduler": "cosine"}
    return Classifier(model, model_kwargs=kwargs, **{**settings, **(optimizer or {})})


def _prunable(net: torch.nn.Module) -> list[torch.nn.Module]:
    """Linear and Conv layers except the output layer (the last one)."""
    layers: list[torch.nn.Module] = [
        m for m in net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
    ]
    return layers[:-1]


def _fit(module: Classifier, dm: FashionMNISTDataModule, epochs: int, callbacks: list[Callback]) -> None:
    trainer = pl.Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, dm)


def _test(module: Classifier, dm: FashionMNISTDataModule) -> float:
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    return float(trainer.test(module, dm, verbose=False)[0]["test/acc"])


def _weight(net: torch.nn.Module, name: str) -> torch.Tensor:
    weight = net.get_submodule(name).weight
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{name}.weight is not a tensor")
    return weight


def _first_name(net: torch.nn.Module) -> str:
    return next(n for n, m in net.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))


@dataclass
class Budget:
    """Shares of the epoch budget a recipe can refer to (``${budget.half}``)."""

    epochs: int = 30
    third: int = 10
    half: int = 15
    two_thirds: int = 20
    last_of_first_half: int = 14


@dataclass
class Recipe:
    """A recipe file: a run config's ``compression`` section, plus how the benchmark schedules it."""

    description: str = ""
    refit: bool = False
    level: float = 0.0
    kept: float = 1.0
    floor: float = 0.0
    budget: Budget = field(default_factory=Budget)
    grid: dict[str, list[float]] = field(default_factory=dict)  # the recipe's variants: name -> values
    variant: dict[str, float] = field(default_factory=dict)  # this run's point of the grid
    training: dict[str, Any] = field(default_factory=dict)  # Classifier arguments replacing the SGD defaults
    compression: Any = field(default_factory=CompressionConfig)


def recipe_path(name: str) -> Path | None:
    """The recipe file a job names, or ``None`` for a peer."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else RECIPES / f"{name}.yaml"
    return path if path.is_file() else None


def grid_of(path: Path) -> dict[str, list[float]]:
    """A recipe file's ``grid`` (empty without one)."""
    import yaml

    raw = yaml.safe_load(path.read_text()) or {}
    return dict(raw.get("grid") or {})


def load_recipe(path: Path, level: float, epochs: int, variant: dict[str, float] | None = None) -> Recipe:
    """Read a recipe with ``level``, the budget and a point of its ``grid`` (``${variant.<name>}``) filled
    in, validated as a run config's section is.

    Example:
        >>> recipe = load_recipe(RECIPES / "low_rank_group_lasso.yaml", 0.9, 30)
        >>> recipe.compression.low_rank.param_ratio, recipe.compression.group_sparsity.stop_epoch
        (0.1, 20)
    """
    budget = {"epochs": epochs, "third": epochs // 3, "half": epochs // 2, "two_thirds": 2 * epochs // 3}
    budget["last_of_first_half"] = budget["half"] - 1
    if variant is None:  # the grid's first point
        variant = {name: float(values[0]) for name, values in grid_of(path).items()}
    floor = round(0.8 * level**0.5, 2)  # 80% of the uniform width that meets a target of `level`
    extra = [
        {"level": level, "kept": round(1 - level, 12), "floor": floor, "budget": budget, "variant": variant}
    ]
    recipe: Recipe = load_config(path, schema=Recipe, extra=extra)
    return recipe


def parse_job(job: str) -> tuple[str, float, dict[str, float]]:
    """``"recipe:level"`` or ``"recipe:level:name=value,..."`` (a point of the recipe's grid).

    Example:
        >>> parse_job("trimmed_group_lasso:1:keep=0.25")
        ('trimmed_group_lasso', 1.0, {'keep': 0.25})
    """
    method, level, *rest = job.split(":")
    variant = {k: float(v) for k, v in (item.split("=") for item in rest[0].split(","))} if rest else {}
    return method, float(level), variant


class _Regularize(Callback):
    """Torch-Pruning's sparse training: pruner.regularize after every backward."""

    def __init__(self, pruner: tp.pruner.GroupNormPruner) -> None:
        self.pruner = pruner

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.pruner.regularize(pl_module.model)


def run(
    method: str,
    level: float,
    epochs: int,
    seed: int,
    dm: FashionMNISTDataModule,
    model: str,
    widths: list[int] | None = None,
    variant: dict[str, float] | None = None,
    inspect: Callable[[Classifier, FashionMNISTDataModule], dict[str, Any]] | None = None,
) -> dict:
    """One run of ``method`` at ``level``; ``inspect`` adds its entries, taken from the trained module."""
    path = recipe_path(method)
    recipe = load_recipe(path, level, epochs, variant) if path is not None else None
    module = _module(seed, model, optimizer=recipe.training if recipe is not None else None)
    dense = module.size()
    if method == "scratch":
        if not widths or model != "lenet300_100":
            raise ValueError("scratch needs --widths and --model lenet300_100")
        module = _module(seed, model, widths)
    half = epochs // 2
    start = time.perf_counter()
    if method in ("dense", "scratch"):
        _fit(module, dm, epochs, [])
    elif recipe is not None:
        callbacks = build_callbacks(recipe.compression)
        if recipe.refit:  # as the peers: sparsify in a first fit, fine-tune in a second one
            _fit(module, dm, half, callbacks)
            _fit(module, dm, epochs - half, [])
        else:
            _fit(module, dm, epochs, callbacks)
    elif method in ("tp_magnitude", "tp_groupnorm"):
        net = module.model
        kwargs: dict[str, Any] = dict(
            pruning_ratio=level,
            ignored_layers=[m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1:],
        )
        attention = [m for m in net.modules() if isinstance(m, torch.nn.MultiheadAttention)]
        if attention:  # embed_dim must stay a multiple of the head count
            kwargs["round_to"] = attention[0].num_heads
            kwargs["unwrapped_parameters"] = [
                (p, p.dim() - 1) for n, p in net.named_parameters(recurse=False)
            ]
        with kept_modes(net):  # Torch-Pruning traces in eval mode and leaves BatchNorm there
            if method == "tp_magnitude":
                pruner = tp.pruner.MagnitudePruner(
                    net, X, importance=tp.importance.GroupMagnitudeImportance(p=2), **kwargs
                )
            else:
                pruner = tp.pruner.GroupNormPruner(
                    net, X, importance=tp.importance.GroupMagnitudeImportance(p=2), reg=1e-4, **kwargs
                )
        _fit(module, dm, half, [_Regularize(pruner)] if method == "tp_groupnorm" else [])
        with kept_modes(net):
            pruner.step()
        for mha in attention:
            mha.head_dim = mha.embed_dim // mha.num_heads
        _fit(module, dm, epochs - half, [])
    elif method == "svd":
        _fit(module, dm, half, [])
        for name in [f"model.{n}" for n in [*layer_widths(module.model)][:-1]]:
            weight = _weight(module, name)
            matrix = weight.detach().reshape(weight.shape[0], -1)
            shape = (int(matrix.shape[0]), int(matrix.shape[1]))
            rank = choose_rank(torch.linalg.svdvals(matrix), param_ratio=1 - level, shape=shape)
            factorize_layer(module, name, rank)
        _fit(module, dm, epochs - half, [])
    elif method == "lt_pruning":
        net = module.model
        pruning = ModelPruning(
            "ln_structured",
            parameters_to_prune=[(layer, "weight") for layer in _prunable(net)],
            amount=lambda epoch: level if epoch == half - 1 else 0.0,
            use_global_unstructured=False,
            use_lottery_ticket_hypothesis=False,
            pruning_norm=1,
            pruning_dim=0,
            make_pruning_permanent=True,
        )
        _fit(module, dm, epochs, [pruning])
        families = find_groups(net, X)
        rows = {  # zero weight rows (conv filters) of each layer
            f.name: torch.nonzero(_weight(net, f.name).detach().flatten(1).abs().sum(1) == 0).flatten()
            for f in families
        }
        remove_groups(net, families, rows, X)
    else:
        raise ValueError(f"unknown method {method!r}")
    seconds = time.perf_counter() - start
    size = module.size()
    return {
        "method": Path(method).stem,
        "level": level,
        "variant": dict(variant or {}),
        "seed": seed,
        "epochs": epochs,
        "test_acc": round(_test(module, dm), 4),
        "params": size["params"],
        "macs": size["macs"],
        "model": model,
        "removed_params": round(1 - size["params"] / dense["params"], 4),
        "removed_macs": round(1 - size["macs"] / dense["macs"], 4),
        "widths": list(layer_widths(module.model).values())[:-1],
        "heads": [m.num_heads for m in module.model.modules() if isinstance(m, torch.nn.MultiheadAttention)],
        "inputs": getattr(module.model.get_submodule(_first_name(module.model)), "in_features", None),
        "fit_seconds": round(seconds, 1),
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        **(inspect(module, dm) if inspect is not None else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", nargs="*", default=DEFAULT_JOBS, help="method:level pairs")
    parser.add_argument(
        "--table", default=None, help="run every job of this table of tables.py (its model, budget, seeds)"
    )
    parser.add_argument("--part", default="0/1", help="with --table: this share of its jobs, e.g. 1/2")
    parser.add_argument("--normalize", default="global", choices=["global", "per_pixel"])
    parser.add_argument("--widths", type=lambda v: [int(w) for w in v.split(",")], help="scratch: e.g. 30,55")
    parser.add_argument("--out", type=Path, default=OUT, help="JSON-lines file the rows are appended to")
    parser.add_argument(
        "--model",
        default="lenet300_100",
        choices=["lenet300_100", "lenet5", "resnet_small", "transformer_small"],
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dm = FashionMNISTDataModule(batch_size=128, normalize=args.normalize)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    todo = [(job, args.seed) for job in args.jobs]
    if args.table:
        table = next(t for t in TABLES if t.name == args.table)
        index, parts = (int(v) for v in args.part.split("/"))
        todo = jobs(table)[index::parts]
        args.epochs, args.model, args.normalize = table.epochs, table.model, table.normalize
        dm = FashionMNISTDataModule(batch_size=128, normalize=args.normalize)
    for job, seed in todo:
        method, level, variant = parse_job(job)
        row = {
            **run(method, level, args.epochs, seed, dm, args.model, args.widths, variant),
            "normalize": args.normalize,
        }
        print(json.dumps(row), flush=True)
        with args.out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
