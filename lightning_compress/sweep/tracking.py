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

from lightning_compress.sweep.compare import MethodsReport
from lightning_compress.sweep.schema import SweepConfig

__all__ = ["finish_trial_logger", "log_summary", "search_config", "trial_logger", "wandb_enabled"]


def wandb_enabled(cfg: SweepConfig) -> bool:
    return cfg.wandb.enabled and os.environ.get("WANDB_MODE", cfg.wandb.mode) != "disabled"


def _mode(cfg: SweepConfig) -> Any:
    return os.environ.get("WANDB_MODE", cfg.wandb.mode)


def _run_id(*parts: str) -> str:
    """A stable W&B run id (so a resumed trial or a second report updates the same run)."""
    text = "-".join(parts)
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:120]


def search_config(trial: optuna.Trial | optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The trial's searched values keyed by run-config key, without the method prefix Optuna needs, so
    the same setting of two methods is one W&B column.

    Example:
        >>> t = optuna.trial.FixedTrial({"method": "a", "a/compression.group_sparsity.strength": 0.1})
        >>> _ = t.suggest_categorical("method", ["a"]), t.suggest_float("a/compression.group_sparsity.strength", 0, 1)
        >>> search_config(t)
        {'compression.group_sparsity.strength': 0.1}
    """
    return {k.split("/", 1)[-1]: v for k, v in trial.params.items() if k != "method"}


def trial_logger(cfg: SweepConfig, trial: optuna.Trial, sweep_dir: Path, run_config: Any = None) -> Any:
    """A Lightning ``WandbLogger`` for one trial (``None`` when W&B is off); its config is the resolved run
    config, the method and the searched values."""
    if not wandb_enabled(cfg):
        return None
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError:  # pragma: no cover - lightning always has it; wandb itself is checked below
        return None
    try:
        import wandb
    except ImportError as err:
        raise ImportError("W&B logging needs wandb: pip install 'lightning-compress[sweep]'") from err
    from omegaconf import OmegaConf

    os.environ.setdefault("WANDB_SILENT", "true")
    resolved = (
        OmegaConf.to_container(OmegaConf.structured(run_config), resolve=True, enum_to_str=True)
        if run_config is not None
        else {}
    )
    logger = WandbLogger(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity,
        group=cfg.name,
        name=f"trial-{trial.number:04d}",
        id=_run_id(cfg.name, f"trial-{trial.number:04d}"),
        resume="allow",
        tags=list(cfg.wandb.tags),
        job_type="trial",
        save_dir=str(sweep_dir),
        mode=_mode(cfg),
        config={
            "trial": trial.number,
            "study": cfg.name,
            "method": trial.params.get("method", next(iter(cfg.methods), None)),
            "search": search_config(trial),
            **(resolved if isinstance(resolved, dict) else {}),
        },
        settings=wandb.Settings(console="off"),  # a worker's console is not the trial's record
    )
    # Lightning always passes ``anonymous`` (None when unset), which W&B warns about once per process
    logger._wandb_init.pop("anonymous", None)
    return logger


def finish_trial_logger(logger: Any) -> None:
    if logger is not None:
        logger.experiment.finish()


TABLE_COLUMNS: list[str | int] = [
    "trial",
    "method",
    "params",
    "macs",
    "latency",
    "latency_spread",
    "val_acc",
    "test_acc",
    "pareto",
    "checkpoint",
    "size_of",
]


def log_summary(
    cfg: SweepConfig,
    sweep_dir: Path,
    trials: Sequence[dict[str, Any]],
    hypervolume: float,
    methods: MethodsReport | None = None,
) -> str | None:
    """The study's summary run (one per study: a second report updates it): every completed trial in a
    ``wandb.Table`` with its ``pareto`` flag, a size / accuracy scatter on the study's size objective, the
    Pareto models' checkpoints as ``model`` artifacts (with their ``export`` command), and with ``methods``
    each method's hypervolume (``hypervolume/<method>``) and the union front's owners (``front_owners``).
    Returns the run's folder."""
    if not wandb_enabled(cfg):
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    size = cfg.objectives.size.value
    run = wandb.init(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity,
        group=cfg.name,
        name=f"{cfg.name}-pareto",
        id=_run_id(cfg.name, "pareto"),
        resume="allow",
        job_type="summary",
        tags=list(cfg.wandb.tags),
        dir=str(sweep_dir),
        mode=_mode(cfg),
        config={"study": cfg.name, "n_trials": cfg.n_trials, "size_objective": size},
    )
    table = wandb.Table(columns=TABLE_COLUMNS, data=[[r.get(str(c)) for c in TABLE_COLUMNS] for r in trials])
    front = [r for r in trials if r.get("pareto")]
    front_table = wandb.Table(
        columns=TABLE_COLUMNS, data=[[r.get(str(c)) for c in TABLE_COLUMNS] for r in front]
    )
    run.log(
        {
            "trials": table,
            "pareto_front": front_table,
            "trials_scatter": wandb.plot.scatter(table, size, "val_acc", title=f"{cfg.name}: all trials"),
            "pareto_scatter": wandb.plot.scatter(
                front_table, size, "val_acc", title=f"{cfg.name}: Pareto front"
            ),
        }
    )
    for r in front:
        checkpoint = r.get("checkpoint")
        if not checkpoint or not Path(checkpoint).is_file():
            continue
        artifact = wandb.Artifact(
            _run_id(cfg.name, f"trial-{r['trial']:04d}"),
            type="model",
            metadata={
                **{
                    k: r.get(k)
                    for k in (
                        "trial",
                        "method",
                        "params",
                        "macs",
                        "latency",
                        "val_acc",
                        "test_acc",
                        "settings",
                    )
                },
                "export": f"lightning-compress export {checkpoint} --out exports/trial-{r['trial']:04d}",
            },
        )
        artifact.add_file(str(checkpoint))
        run.log_artifact(artifact, aliases=["pareto"])
    run.summary["hypervolume"] = hypervolume
    if methods is not None:
        for method, hv in methods.hypervolume.items():
            run.summary[f"hypervolume/{method}"] = hv
        if methods.rho is not None:
            run.summary["macs_latency_spearman"] = methods.rho
        columns: list[str | int] = [
            "method",
            "first",
            "last",
            "models",
            "from_share",
            "to_share",
            "from_acc",
            "to_acc",
        ]
        owners = wandb.Table(columns=columns, data=[[s[str(c)] for c in columns] for s in methods.stretches])
        run.log({"front_owners": owners})
    run.summary["pareto_size"] = len(front)
    folder = str(Path(run.dir).parent)
    run.finish()
    return folder
