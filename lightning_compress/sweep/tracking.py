"""Weights & Biases logging for sweeps: one run per trial grouped by study, and a Pareto summary run.

Offline mode (the default here) needs no account: runs are written under the sweep folder and
``wandb sync <folder>`` uploads them later. ``WANDB_MODE=disabled`` (or ``wandb.enabled: false``) turns
logging off. Optuna's deprecated ``WeightsAndBiasesCallback`` is not used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna

from lightning_compress.sweep.schema import SweepConfig

__all__ = ["finish_trial_logger", "log_summary", "trial_logger", "wandb_enabled"]


def wandb_enabled(cfg: SweepConfig) -> bool:
    return cfg.wandb.enabled and os.environ.get("WANDB_MODE", cfg.wandb.mode) != "disabled"


def _mode(cfg: SweepConfig) -> Any:
    return os.environ.get("WANDB_MODE", cfg.wandb.mode)


def trial_logger(cfg: SweepConfig, trial: optuna.Trial, sweep_dir: Path) -> Any:
    """A Lightning ``WandbLogger`` for one trial (``None`` when W&B is off)."""
    if not wandb_enabled(cfg):
        return None
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError:  # pragma: no cover - lightning always has it; wandb itself is checked below
        return None
    try:
        import wandb  # noqa: F401
    except ImportError as err:
        raise ImportError("W&B logging needs wandb: pip install 'lightning-compress[sweep]'") from err
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity,
        group=cfg.name,
        name=f"trial-{trial.number:04d}",
        tags=list(cfg.wandb.tags),
        job_type="trial",
        save_dir=str(sweep_dir),
        mode=_mode(cfg),
        config={"trial": trial.number, **trial.params},
    )


def finish_trial_logger(logger: Any) -> None:
    if logger is not None:
        logger.experiment.finish()


def log_summary(
    cfg: SweepConfig, sweep_dir: Path, rows: Sequence[dict[str, Any]], hypervolume: float
) -> str | None:
    """A summary run with the Pareto front as a ``wandb.Table`` and a scatter chart; returns its folder."""
    if not wandb_enabled(cfg):
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity,
        group=cfg.name,
        name=f"{cfg.name}-pareto",
        job_type="summary",
        tags=list(cfg.wandb.tags),
        dir=str(sweep_dir),
        mode=_mode(cfg),
        config={"study": cfg.name, "n_trials": cfg.n_trials, "size_objective": cfg.objectives.size.value},
    )
    columns: list[str | int] = ["trial", "method", "params", "macs", "val_acc", "test_acc", "checkpoint"]
    table = wandb.Table(columns=columns, data=[[r.get(str(c)) for c in columns] for r in rows])
    run.log(
        {
            "pareto_front": table,
            "pareto_scatter": wandb.plot.scatter(
                table, "params", "val_acc", title=f"{cfg.name}: Pareto front"
            ),
        }
    )
    run.summary["hypervolume"] = hypervolume
    run.summary["pareto_size"] = len(rows)
    folder = str(Path(run.dir).parent)
    run.finish()
    return folder
