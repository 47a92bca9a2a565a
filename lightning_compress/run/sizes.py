"""Take many sizes out of one flexible-rank checkpoint: a model per size, its accuracy, and the curve."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as pl
import torch

from lightning_compress.callbacks import AtomicCheckpointIO
from lightning_compress.config import ConfigError, build_datamodule, load_config
from lightning_compress.run.compress import find_run_config, load_checkpoint, writable_folder
from lightning_compress.surgery import INPUTS_ATTRIBUTE, example_from_spec, get_history, plan_size, set_size
from lightning_compress.surgery.measure.sizes import size_basis

__all__ = ["format_sizes", "take_sizes", "trained_min_rank"]

MEASURES = ("params", "macs", "ratio")


def _check(sizes: list[float], by: str, bn_batches: int, min_rank: int | None) -> None:
    if by not in MEASURES:
        raise ConfigError("--by", f"must be one of {', '.join(MEASURES)}, got {by!r}")
    if not sizes:
        raise ConfigError(f"--{by}", "give at least one size")
    for size in sizes:
        if not size > 0 or (by == "ratio" and size > 1):
            rule = "in (0, 1]" if by == "ratio" else "> 0 (a share <= 1 or a count)"
            raise ConfigError(f"--{by}", f"every size must be {rule}, got {size}")
    if bn_batches < 0:
        raise ConfigError("--bn-batches", f"must be >= 0, got {bn_batches}")
    if min_rank is not None and min_rank < 1:
        raise ConfigError("--min-rank", f"must be >= 1, got {min_rank}")


def take_sizes(
    checkpoint: str | Path,
    sizes: list[float],
    *,
    by: str = "params",
    out: str | Path | None = None,
    config: str | Path | None = None,
    bn_batches: int = 50,
    min_rank: int | None = None,
    progress: bool = True,
    validate: bool = False,
) -> list[dict[str, Any]]:
    """One model per size of a ``train`` checkpoint (trained with ``FlexibleRank``, or any other: then it is
    plain truncated SVD), each tested; returns a row per size (size, ranks, test accuracy, seconds).

    ``by``: the sizes are ``params`` or ``macs`` (shares <= 1 of the dense model, or counts) or ``ratio``
    (shares of the singular values kept). With ``out``, each model is written there as
    ``<by>-<size>.ckpt`` beside ``sizes.json`` and ``sizes.png`` (accuracy against size). ``min_rank``:
    the smallest rank of any layer (default: the one the model was trained with, else 1). ``validate``:
    the validation accuracy too (``val_acc``), which a sweep's objective reads.

    Example:
        >>> take_sizes("/no/such.ckpt", [0.5])
        Traceback (most recent call last):
        ...
        lightning_compress.config.errors.ConfigError: checkpoint: file not found: '/no/such.ckpt'
    """
    _check(sizes, by, bn_batches, min_rank)
    if out is not None:
        writable_folder(out, "--out")
    module = load_checkpoint(checkpoint)
    min_rank = min_rank if min_rank is not None else trained_min_rank(checkpoint)
    cfg = load_config(config or find_run_config(checkpoint))
    x = module.example_input_array
    if x is None and INPUTS_ATTRIBUTE in module._buffers:
        x = example_from_spec(cast(torch.Tensor, module._buffers[INPUTS_ATTRIBUTE]))

    def budget(size: float) -> dict[str, float | None]:
        return {k: (size if k == by else None) for k in MEASURES}

    start = time.perf_counter()
    basis = size_basis(module, x)  # one SVD per layer and one count, for every size
    basis_seconds = round(time.perf_counter() - start, 3)
    for size in sizes:  # every budget checked before the first model is built
        try:
            plan_size(module, x, **budget(size), min_rank=min_rank, basis=basis)  # type: ignore[arg-type]
        except ValueError as err:
            raise ConfigError(f"--{by}", str(err)) from None
    torch.manual_seed(cfg.seed)  # the BatchNorm batches: the run's seed fixes their order (EpochShuffle)
    datamodule = build_datamodule(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    trainer = pl.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        logger=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        plugins=[AtomicCheckpointIO()],
    )
    rows = []
    for size in sizes:
        start = time.perf_counter()
        small: Any = set_size(
            module,
            x,
            **budget(size),  # type: ignore[arg-type]
            batches=datamodule.train_dataloader(),
            bn_batches=bn_batches,
            min_rank=min_rank,
            basis=basis,
        )
        seconds = time.perf_counter() - start
        result = dict(trainer.test(small, datamodule=datamodule, verbose=False)[0])
        if validate:
            result.update(trainer.validate(small, datamodule=datamodule, verbose=False)[0])
        counted = small.size()
        row = {
            "by": by,
            "size": size,
            "params": counted["params"],
            "macs": counted["macs"],
            "test_acc": float(result["test/acc"]),
            **({"val_acc": float(result["val/acc"])} if validate else {}),
            "set_size_seconds": round(seconds, 3),
            "basis_seconds": basis_seconds,
            "ranks": {r["module"]: r["rank"] for r in get_history(small) if r.get("kind") == "factorize"},
        }
        if out is not None:
            path = Path(out) / f"{by}-{size:g}.ckpt"
            trainer.save_checkpoint(path, weights_only=False)
            row["checkpoint"] = str(path)
        rows.append(row)
    if out is not None:
        (Path(out) / "sizes.json").write_text(json.dumps(rows, indent=2) + "\n")
        _plot(rows, Path(out) / "sizes.png", module.size())
    return rows


def trained_min_rank(checkpoint: str | Path) -> int:
    """The ``min_rank`` a ``FlexibleRank`` fit wrote into ``checkpoint`` (1 when there is none).

    Example:
        >>> import tempfile; path = tempfile.mkdtemp() + "/x.ckpt"
        >>> torch.save({"callbacks": {"FlexibleRank{'seed': 0}": {"min_rank": 5}}}, path); trained_min_rank(path)
        5
    """
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for key, state in (saved.get("callbacks") or {}).items():
        if str(key).startswith("FlexibleRank") and isinstance(state, dict) and "min_rank" in state:
            return int(state["min_rank"])
    return 1


def _plot(rows: list[dict[str, Any]], path: Path, dense: dict[str, int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    shares = [100 * r["params"] / dense["params"] for r in rows]
    ax.plot(shares, [100 * r["test_acc"] for r in rows], "o-")
    ax.set_xscale("log")
    ax.set_xlabel("parameters kept (% of dense, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("one flexible-rank model, every size")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def format_sizes(rows: list[dict[str, Any]]) -> str:
    """The rows as a table: the size asked for, the parameters and MACs reached, the test accuracy.

    Example:
        >>> print(format_sizes([{"by": "params", "size": 0.5, "params": 100, "macs": 90, "test_acc": 0.9,
        ...                      "set_size_seconds": 0.1}]))
        params asked     params         MACs  test acc  seconds
                 0.5        100           90    90.00%      0.1
    """
    by = rows[0]["by"] if rows else "params"
    lines = [f"{by + ' asked':>12}  {'params':>9}  {'MACs':>11}  test acc  seconds"]
    for r in rows:
        lines.append(
            f"{r['size']:>12g}  {r['params']:>9,}  {r['macs']:>11,}  {100 * r['test_acc']:>7.2f}%  "
            f"{r['set_size_seconds']:>7.1f}"
        )
    return "\n".join(lines)
