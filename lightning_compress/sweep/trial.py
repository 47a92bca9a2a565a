"""One sweep trial: train with the suggested compression, compress physically, evaluate, record, save."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
import torch
from lightning.pytorch.callbacks import Callback

from lightning_compress._compat import trial_id
from lightning_compress.config.load import load_config
from lightning_compress.config.schema import RunConfig
from lightning_compress.run import train
from lightning_compress.sweep.latency import checkpoint_latency, dense_latency
from lightning_compress.sweep.schema import EarlyStopConfig, SweepConfig
from lightning_compress.sweep.space import suggest_overrides
from lightning_compress.sweep.tracking import finish_trial_logger, trial_logger

__all__ = ["Interrupted", "StopFlag", "add_sizes", "record_latency", "run_trial", "trial_dir"]


class Interrupted(Exception):
    """The worker was asked to stop (Ctrl-C) while this trial trained."""


class StopFlag:
    """A stop request that signal handlers may raise at any moment, also twice in a row.

    :meth:`set` takes no lock (``threading.Event.set`` does: a second Ctrl-C arriving while the handler of
    the first is inside it would wait forever on the lock its own thread holds). :meth:`wait` polls
    every ``poll`` seconds.

    Example:
        >>> stop = StopFlag()
        >>> stop.wait(0.01), stop.is_set()
        (False, False)
        >>> stop.set(); stop.set()
        >>> stop.is_set(), stop.wait(10.0)
        (True, True)
    """

    def __init__(self, poll: float = 0.05) -> None:
        self._flag = False
        self.poll = poll

    def set(self) -> None:
        self._flag = True

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float) -> bool:
        """Sleep until the flag is set or ``timeout`` seconds pass; returns whether it is set."""
        deadline = time.monotonic() + timeout
        while not self._flag:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.poll, left))
        return True


class TrialGuard(Callback):
    """Stops a trial that is hopeless (our early-stop rule), diverged (non-finite loss), or interrupted."""

    def __init__(
        self,
        rule: EarlyStopConfig,
        stop: StopFlag,
        check_every: int = 50,
        report: Callable[[int, float], None] | None = None,
    ) -> None:
        self.rule = rule
        self.report = report
        self.stop = stop
        self.check_every = check_every
        self.hopeless: str | None = None
        self.interrupted = False
        self._last_loss: Any = None

    def _check_loss(self, trainer: pl.Trainer, loss: Any) -> None:
        if isinstance(loss, Mapping):
            loss = loss.get("loss")
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
            raise FloatingPointError(f"training loss is {float(loss)} at epoch {trainer.current_epoch}")

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *args: Any
    ) -> None:
        if self.stop.is_set():  # end fit now: no validation, test or final checkpoint of half-trained weights
            self.interrupted = True
            raise Interrupted(f"interrupted at epoch {trainer.current_epoch}, step {trainer.global_step}")
        self._last_loss = outputs
        if trainer.global_step % self.check_every == 0:  # one host-device sync every check_every steps
            self._check_loss(trainer, outputs)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check_loss(trainer, self._last_loss)
        # this epoch's validation has run (and been logged) by now
        acc = trainer.callback_metrics.get("val/acc")
        if acc is not None and self.report is not None and not trainer.sanity_checking:
            self.report(trainer.current_epoch, float(acc))
        if self.rule.min_val_acc is None or acc is None or trainer.current_epoch < self.rule.after_epoch:
            return
        if float(acc) < self.rule.min_val_acc:
            self.hopeless = (
                f"val/acc {float(acc):.4f} < {self.rule.min_val_acc} after epoch {trainer.current_epoch}"
            )
            trainer.should_stop = True


def report_intermediate(trial: optuna.Trial, epoch: int, val_acc: float) -> None:
    """Record an epoch's validation accuracy as the trial's intermediate value (learning curves in
    optuna-dashboard and ``plot_intermediate_values``). ``Trial.report`` refuses multi-objective studies;
    the storage records the value all the same."""
    trial.storage.set_trial_intermediate_value(trial_id(trial), epoch, val_acc)


def set_floor_constraint(trial: optuna.Trial, value: float) -> None:
    """The accuracy-floor constraint (feasible when <= 0), in the system attribute the samplers and
    optuna-dashboard both read (``constraints``, a list)."""
    trial.storage.set_trial_system_attr(trial_id(trial), "constraints", [float(value)])


def trial_dir(sweep_dir: Path, number: int) -> Path:
    """The folder a trial's run writes to.

    Example:
        >>> trial_dir(Path("runs/sweeps/demo"), 7).as_posix()
        'runs/sweeps/demo/trials/trial-0007'
    """
    return sweep_dir / "trials" / f"trial-{number:04d}"


def run_trial(
    trial: optuna.Trial, cfg: SweepConfig, base: Path, sweep_dir: Path, stop: StopFlag
) -> tuple[float, float]:
    """Train one point of the space; returns ``(size, val_acc)`` and records everything as user attributes.

    Raises:
        optuna.TrialPruned: the early-stop rule stopped it.
        Interrupted: the worker is stopping.
        FloatingPointError: the loss diverged (the trial fails with that reason).
    """
    method, compression, overrides = suggest_overrides(trial, cfg)
    extra = [{"compression": compression}] if compression else []
    run_cfg = load_config(
        base,
        [*cfg.overrides, *overrides, f"name=trial-{trial.number:04d}", "trainer.enable_progress_bar=false"],
        extra=extra,
    )
    trial.set_user_attr("method", method)
    trial.set_user_attr("overrides", overrides)
    run_dir = trial_dir(sweep_dir, trial.number)
    guard = TrialGuard(cfg.early_stop, stop, report=lambda epoch, acc: report_intermediate(trial, epoch, acc))
    logger = trial_logger(cfg, trial, sweep_dir, run_cfg)
    try:
        summary = train(run_cfg, run_dir=run_dir, callbacks=[guard], loggers=[logger] if logger else [])
        acc = float(summary["val_acc"])
        for key in (
            "test_acc",
            "params",
            "macs",
            "dense_params",
            "dense_macs",
            "fit_seconds",
            "widths",
            "epochs",
        ):
            trial.set_user_attr(key, summary[key])
        trial.set_user_attr("checkpoint", summary["final_checkpoint"])
        if cfg.objectives.accuracy_floor is not None:  # feasible when <= 0
            set_floor_constraint(trial, cfg.objectives.accuracy_floor - acc)
        if guard.hopeless:
            trial.set_user_attr("pruned_reason", guard.hopeless)
            raise optuna.TrialPruned(guard.hopeless)
        timed = record_latency(trial, cfg, summary["final_checkpoint"], run_cfg)
        size = float({**summary, **timed}[cfg.objectives.size.value])
        if logger is not None:
            logger.experiment.summary.update({"objective/size": size, "objective/val_acc": acc})
        sizes = cfg.methods[method].sizes if method else []
        if sizes:
            add_sizes(trial, cfg, summary, run_dir, sizes, run_cfg)
    finally:
        finish_trial_logger(logger)
    return size, acc


def record_latency(
    trial: optuna.Trial | None, cfg: SweepConfig, checkpoint: str | Path, run_cfg: RunConfig
) -> dict[str, Any]:
    """Time the checkpoint's exported model (:mod:`~lightning_compress.sweep.latency`) and the dense model,
    set them as ``trial``'s user attributes and return them. A model that cannot be exported or timed is
    recorded with ``latency_error`` unless latency is the objective (then the trial fails with the reason)."""
    study = trial.study if trial is not None else None
    try:
        timed = checkpoint_latency(checkpoint, run_cfg, cfg.latency, study)
        timed["dense_latency"] = dense_latency(run_cfg, cfg.latency, study)
    except Exception as err:
        if cfg.objectives.size.value == "latency":
            raise RuntimeError(f"the model's latency cannot be measured: {err}") from err
        timed = {"latency_error": f"{type(err).__name__}: {err}"}
    for key, value in timed.items():
        if trial is not None:
            trial.set_user_attr(key, value)
    return timed


def add_sizes(
    trial: optuna.Trial,
    cfg: SweepConfig,
    summary: Mapping[str, Any],
    run_dir: Path,
    sizes: list[float],
    run_cfg: RunConfig,
) -> list[float]:
    """Take the trained model at each of ``sizes`` (shares of the size objective; of the MACs when latency
    is the objective) and add each to the study as a completed trial of its own: its size (or measured
    latency) and validation accuracy, the method and settings of ``trial``, ``size_of`` (the trial it came
    from) and ``share``; its model is written under ``run_dir/sizes``. A size the model cannot reach is
    skipped. Returns the shares added (also the trial's ``sizes`` attribute)."""
    from lightning_compress.config import ConfigError
    from lightning_compress.run.sizes import take_sizes

    objective = cfg.objectives.size.value
    by = "macs" if objective == "latency" else objective
    added = []
    for share in sizes:
        try:
            (row,) = take_sizes(
                summary["final_checkpoint"],
                [share],
                by=by,
                out=run_dir / "sizes",
                progress=False,
                validate=True,
            )
        except ConfigError:
            continue
        floor = cfg.objectives.accuracy_floor
        attrs = {
            "method": trial.user_attrs.get("method"), "size_of": trial.number, "share": share,
            "params": row["params"], "macs": row["macs"], "test_acc": row["test_acc"],
            "checkpoint": row["checkpoint"], "ranks": row["ranks"],
            **{k: summary[k] for k in ("dense_params", "dense_macs")},
        }  # fmt: skip
        attrs.update(record_latency(None, cfg, row["checkpoint"], run_cfg))
        frozen = optuna.trial.create_trial(
            values=[float({**row, **attrs}[objective]), float(row["val_acc"])],
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=attrs,
            system_attrs={"constraints": [floor - row["val_acc"]]} if floor is not None else None,
        )
        trial.study.add_trial(frozen)
        added.append(share)
    trial.set_user_attr("sizes", added)
    return added
