"""LeNet-300-100 on Fashion-MNIST: parameters physically removed vs test accuracy, same epoch budget.

Methods (each run trains ``--epochs`` epochs in total, SGD momentum 0.9, lr 0.05 cosine, wd 1e-4):
  dense        the baseline
  ours         GroupSparsity (prox every step) + StructuredPruning every epoch, over a strength sweep
  ours_ft      the same with stop_epoch = 2/3 of the budget: the last third fine-tunes the pruned model
  ours_conv    per-layer strengths (LeNet-5): the strength on the conv layers, a tenth of it on the rest
  ours_macs    GroupSparsity(cost="macs"): each group weighted by the MACs its removal saves per parameter
  ours_macs_ft ours_macs with stop_epoch = 2/3 of the budget, as ours_ft
  ours_macs_warm  ours_macs with warmup_epochs = 1/3 of the budget (dense training first, as the peers)
  ours_macs_sqrt  ours_macs with cost_exponent=0.5 (the square root of the MACs-per-parameter weights)
               (suffixes combine: ours_macs_sqrt_ft, ours_macs_warm_ft = dense, sparsify, fine-tune thirds)
  ours_macs_bn ours_macs with groups="bn": under BatchNorm, only the norm's scale and shift are the group
  ours_coupled, ours_macs_coupled  with groups="coupled": a channel's group also holds the next layers'
               input weights (with BatchNorm after a conv, the conv filter's own scale is free, so the
               paper's incoming group alone can shrink without changing the function)
  ours_..._half  stop_epoch at half the budget: the second half fine-tunes (the peers' split)
  ours_..._refit  the peers' schedule exactly: a first fit of half the budget with the lasso (its own
               cosine cycle), the pruned model then fine-tuned by a second fit (a new optimizer and cycle)
  ours_ramp    the strength grows linearly over the first third of the budget (ramp_epochs);
               ours_..._rampN over the first N epochs
  ours_..._keepNN  the trimmed group lasso: keep_ratio=NN/100, the largest NN% of each layer's groups
               (width at the start) are not penalized: a floor under every layer, survivors unshrunk
               (suffixes combine with the others, e.g. ours_macs_ft_keep20, ours_ft_keep10)
  ours_px      the same with the first layer's input features (pixels) as groups too, removed physically
  tp_magnitude Torch-Pruning MagnitudePruner (L2 group importance): half the epochs dense, one-shot prune
               to a channel ratio, fine-tune the other half
  tp_groupnorm Torch-Pruning GroupNormPruner: half the epochs sparse training (pruner.regularize), prune,
               fine-tune the other half
  scratch      the small architecture of --widths (LeNet-300-100 hidden widths), trained from scratch for
               the whole budget: what the found architecture is worth without the compression run
  lt_pruning   Lightning ModelPruning (ln_structured, L1, rows) at mid-training, fine-tuned with the
               masks, then zero rows removed physically (constant neurons folded into the next bias)

Usage: python benchmarks/group_sparsity_vs_peers.py [--epochs 30] [--jobs ours:0.001 tp_magnitude:0.9 ...]
Results are appended to benchmarks/results/group_sparsity_vs_peers.jsonl, one line per run.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch_pruning as tp
from lightning.pytorch.callbacks import Callback, ModelPruning

from lightning_compress.callbacks import GroupSparsity, StructuredPruning
from lightning_compress.data import FashionMNISTDataModule
from lightning_compress.models import Classifier
from lightning_compress.surgery import find_groups, kept_modes, layer_widths, remove_groups

OUT = Path(__file__).resolve().parent / "results" / "group_sparsity_vs_peers.jsonl"
X = torch.zeros(1, 1, 28, 28)
DEFAULT_JOBS = [
    "dense:0",
    *(f"ours:{s}" for s in (0.0003, 0.001, 0.002, 0.004, 0.008)),
    *(f"{m}:{r}" for m in ("tp_magnitude", "tp_groupnorm", "lt_pruning") for r in (0.5, 0.8, 0.9, 0.95)),
]


def _module(seed: int, model: str, widths: list[int] | None = None) -> Classifier:
    pl.seed_everything(seed, verbose=False)
    wd = 1e-4 if model == "lenet300_100" else 5e-4
    kwargs = {"hidden": widths} if widths else {}
    return Classifier(model, model_kwargs=kwargs, lr=0.05, momentum=0.9, weight_decay=wd, scheduler="cosine")


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


def ours_options(method: str, epochs: int) -> tuple[dict[str, Any], bool]:
    """``GroupSparsity`` keyword arguments of an ``ours[_flag...]`` method, and whether it refits.

    Flags: ours[_macs][_sqrt][_coupled|_bn][_warm][_ramp|_rampN][_ft|_half|_refit][_keepNN].

    Example:
        >>> ours_options("ours_macs_ramp_half_keep40", 12)[0]["keep_ratio"]
        0.4
    """
    flags = method.split("_")
    if flags[0] != "ours" or len(set(flags)) != len(flags):
        raise ValueError(f"unknown method {method!r}")
    flags = flags[1:]
    keep = [f[4:] for f in flags if f.startswith("keep")]
    ramp = [f[4:] for f in flags if f.startswith("ramp")]
    plain = set(flags) - {f"keep{k}" for k in keep} - {f"ramp{r}" for r in ramp}
    if (
        not plain <= {"macs", "sqrt", "coupled", "bn", "ft", "half", "warm", "refit"}
        or len(keep) > 1
        or len(ramp) > 1
        or not all(k.isdigit() and 0 < int(k) < 100 for k in keep)
        or not all(r == "" or r.isdigit() for r in ramp)
        or len(plain & {"ft", "half", "refit"}) > 1
        or len(plain & {"coupled", "bn"}) > 1
    ):
        raise ValueError(f"unknown method {method!r}")
    options = {
        "cost": "macs" if "macs" in plain else "params",
        "cost_exponent": 0.5 if "sqrt" in plain else 1.0,
        "groups": "coupled" if "coupled" in plain else "bn" if "bn" in plain else "incoming",
        "warmup_epochs": epochs // 3 if "warm" in plain else 0,
        "ramp_epochs": (int(ramp[0]) if ramp[0] else epochs // 3) if ramp else 0,
        "stop_epoch": 2 * epochs // 3 if "ft" in plain else epochs // 2 if "half" in plain else None,
        "keep_ratio": int(keep[0]) / 100 if keep else 0.0,
    }
    return options, "refit" in plain


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
    input_ratio: float = 1.0,
    widths: list[int] | None = None,
) -> dict:
    module = _module(seed, model)
    dense = module.size()
    if method == "scratch":
        if not widths or model != "lenet300_100":
            raise ValueError("scratch needs --widths and --model lenet300_100")
        module = _module(seed, model, widths)
    half = epochs // 2
    start = time.perf_counter()
    if method in ("dense", "scratch"):
        _fit(module, dm, epochs, [])
    elif (
        method == "ours_conv"
    ):  # per-layer strengths: full strength on convolutions (the MACs), 1/10 elsewhere
        gs = GroupSparsity(level / 10, layer_strengths={"model.features.*": level}, log_effective_size=False)
        _fit(module, dm, epochs, [gs, StructuredPruning(every_n_epochs=1)])
    elif method == "ours" or (method.startswith("ours_") and method != "ours_px"):
        options, refit = ours_options(method, epochs)
        gs = GroupSparsity(level, log_effective_size=False, **options)
        if refit:  # as the peers: sparsify in a first fit, fine-tune in a second one
            _fit(module, dm, half, [gs, StructuredPruning(every_n_epochs=1)])
            _fit(module, dm, epochs - half, [])
        else:
            _fit(module, dm, epochs, [gs, StructuredPruning(every_n_epochs=1)])
    elif method == "ours_px":  # also input-feature (pixel) groups on the first layer
        first = f"model.{_first_name(module.model)}"
        gs = GroupSparsity(
            level, input_layers=[first], input_strength=level * input_ratio, log_effective_size=False
        )
        _fit(module, dm, epochs, [gs, StructuredPruning(every_n_epochs=1, input_layers=[first])])
    elif method in ("tp_magnitude", "tp_groupnorm"):
        net = module.model
        kwargs = dict(
            pruning_ratio=level,
            ignored_layers=[m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1:],
        )
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
        "method": method,
        "level": level,
        "seed": seed,
        "epochs": epochs,
        "test_acc": round(_test(module, dm), 4),
        "params": size["params"],
        "macs": size["macs"],
        "model": model,
        "removed_params": round(1 - size["params"] / dense["params"], 4),
        "removed_macs": round(1 - size["macs"] / dense["macs"], 4),
        "widths": list(layer_widths(module.model).values())[:-1],
        "inputs": getattr(module.model.get_submodule(_first_name(module.model)), "in_features", None),
        "fit_seconds": round(seconds, 1),
        **({"input_ratio": input_ratio} if method == "ours_px" else {}),
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
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
        "--input-ratio", type=float, default=1.0, help="ours_px: pixel-group strength / strength"
    )
    parser.add_argument("--normalize", default="global", choices=["global", "per_pixel"])
    parser.add_argument("--widths", type=lambda v: [int(w) for w in v.split(",")], help="scratch: e.g. 30,55")
    parser.add_argument("--out", type=Path, default=OUT, help="JSON-lines file the rows are appended to")
    parser.add_argument("--model", default="lenet300_100", choices=["lenet300_100", "lenet5", "resnet_small"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dm = FashionMNISTDataModule(batch_size=128, normalize=args.normalize)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for job in args.jobs:
        method, level = job.split(":")
        row = {
            **run(
                method, float(level), args.epochs, args.seed, dm, args.model, args.input_ratio, args.widths
            ),
            "normalize": args.normalize,
        }
        print(json.dumps(row), flush=True)
        with args.out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
