"""The private base of every callback that applies a regularizer's proximal steps during fit: WHEN.

A subclass only builds its :class:`~lightning_compress.regularizers.Regularizer`; this base owns the
schedule (warm-up, linear ramp, stop epoch; every N optimizer steps, at epoch end or as a subgradient),
the optimizer post-step hook, the step size from the current learning rate, checkpoint state and logging.
"""

from __future__ import annotations

import copy
from enum import Enum
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch.utils.hooks import RemovableHandle

from lightning_compress._checks import ArgumentError, check_choice, check_int
from lightning_compress.callbacks._common import TracingCallback, check_input_key, example_inputs, has_example
from lightning_compress.callbacks._target import Budget, Steering
from lightning_compress.regularizers import Regularizer, SizeTarget

__all__ = ["ProxSchedule", "ProximalCallback"]


class ProxSchedule(str, Enum):
    """When the proximal step runs.

    Example:
        >>> ProxSchedule("epoch").value
        'epoch'
    """

    step = "step"  # after every N-th optimizer step, step size lr * N
    epoch = "epoch"  # at each epoch end, step size lr
    subgradient = "subgradient"  # no prox: the penalty's subgradient is added before each step


ProxScheduleName = Literal["step", "epoch", "subgradient"]
"""The values of :class:`ProxSchedule`, for signatures that command-line parsers read (``Literal`` choices)."""


class ProximalCallback(TracingCallback):
    """Schedules ``self.regularizer``'s proximal steps; subclasses set ``regularizer`` and ``log_prefix``.

    The prox is attached to the optimizer's own step (``register_step_post_hook``): it runs once per real
    step, whatever the gradient accumulation, and not at all for steps that AMP skips. The step size is
    the optimizer's current learning rate (times N with ``every_n_steps=N``; with ``"epoch"``, the rate the
    epoch trained with), times the fraction of the strength in force (:meth:`factor`).
    """

    regularizer: Regularizer
    log_prefix = "regularizer"
    target: SizeTarget | None = None
    budget: Budget | None = None

    def __init__(
        self,
        *,
        schedule: ProxSchedule | ProxScheduleName = ProxSchedule.step,
        every_n_steps: int = 1,
        warmup_epochs: int = 0,
        ramp_epochs: int = 0,
        stop_epoch: int | None = None,
        input_key: str | None = None,
        example_input: Any = None,
    ) -> None:
        self.example_input = example_input
        self.batch_key = check_input_key(input_key)
        self.schedule = check_choice(ProxSchedule, schedule, "schedule")
        self.every_n_steps = check_int(every_n_steps, "every_n_steps", 1)
        self.warmup_epochs = check_int(warmup_epochs, "warmup_epochs", 0)
        self.ramp_epochs = check_int(ramp_epochs, "ramp_epochs", 0)
        if stop_epoch is not None and (
            isinstance(stop_epoch, bool) or not isinstance(stop_epoch, int) or stop_epoch <= warmup_epochs
        ):
            raise ArgumentError("stop_epoch", f"stop_epoch must be an int > warmup_epochs, got {stop_epoch=}")
        self.stop_epoch = stop_epoch
        self._steps = 0
        self._epoch = 0
        self._epoch_lr = 0.0
        self._module: pl.LightningModule | None = None
        self._handles: list[RemovableHandle] = []
        self._steering = Steering(self.every_n_steps)
        self._ratio = 1.0
        self._lr = 0.0

    def _set_target(self, target: SizeTarget | None, strength: float | None, default: float) -> float:
        """Keep ``target`` after checking what conflicts with it; returns the strength to build with."""
        self.target = target
        if target is None:
            return default if strength is None else strength
        conflicts = {
            "strength": strength is not None,
            "ramp_epochs": self.ramp_epochs > 0,
            "schedule": self.schedule == ProxSchedule.subgradient,
        }
        for name, conflict in conflicts.items():
            if conflict:
                raise ArgumentError(
                    name,
                    f"{target.argument} steers the strength itself: {name} cannot be given with it "
                    "(a target shrinks by proximal steps, schedule 'step' or 'epoch')",
                )
        return 1.0  # layer_strengths are then relative weights

    def preflight(self, pl_module: pl.LightningModule, max_epochs: int | None = None) -> None:
        """Check, on a copy of ``pl_module`` and before any work, what needs the model: ``include`` /
        ``exclude`` / ``layer_strengths`` patterns that match no layer, a size target not below the dense
        size or forbidden by the floors (one-line :class:`ArgumentError`)."""
        if not has_example(pl_module):
            return
        try:
            self._attach(copy.deepcopy(pl_module))
        finally:
            self._module, self.budget = None, None

    def make_budget(self) -> Budget:
        """The regularizer's size budget for ``self.target`` (a subclass with targets overrides it)."""
        raise NotImplementedError

    # ------------------------------------------------------------ schedule
    def factor(self) -> float:
        """Fraction of the full strength in force this epoch (warm-up, then a linear ramp, then a stop)."""
        if self._epoch < self.warmup_epochs:
            return 0.0
        if self.stop_epoch is not None and self._epoch >= self.stop_epoch:
            return 0.0
        if self.ramp_epochs == 0:
            return 1.0
        return min(1.0, (self._epoch - self.warmup_epochs + 1) / self.ramp_epochs)

    def _attach(self, pl_module: pl.LightningModule) -> None:
        if self._module is not pl_module:
            self.regularizer.attach(pl_module, lambda: example_inputs(pl_module))
            self._module = pl_module
            if self.target is not None:
                self.budget = self.make_budget()
                self.budget.goal()  # a target not below the dense size: one line, before any step
                self.budget.ratio = self._ratio  # restored from a checkpoint (1 on a fresh fit)
                self.budget.select()  # a target the floors make impossible: one line, before any step

    def prox(self, pl_module: pl.LightningModule, step: float) -> None:
        """Apply the proximal step now, with step size ``step`` times :meth:`factor`."""
        scaled = step * self.factor()
        if scaled == 0.0:
            return
        self._attach(pl_module)
        self.regularizer.prox_(scaled)

    # --------------------------------------------------------------- hooks
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":  # a checkpoint's state, restored after this, takes precedence
            self.regularizer.load_state_dict({})
        super().setup(trainer, pl_module, stage)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._module = None
        if has_example(pl_module):  # otherwise at the first batch, which gives the example input
            self._attach(pl_module)
        if self.schedule == ProxSchedule.step:
            for optimizer in trainer.optimizers:
                self._handles.append(optimizer.register_step_post_hook(self._after_step))

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
        if self._module is None:
            self._attach(pl_module)

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._steps += 1
        if self._module is not None and self._steps % self.every_n_steps == 0:
            lr = float(optimizer.param_groups[0]["lr"])
            if self.budget is not None:
                self._lr = lr * self.every_n_steps
                if self._epoch >= self.warmup_epochs:
                    self._steering.step(self.budget, self._steps)
                return
            self.prox(self._module, lr * self.every_n_steps)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        factor = self.factor()
        if self.schedule == ProxSchedule.subgradient and factor > 0.0:
            self._attach(pl_module)
            self.regularizer.add_subgradient_(factor)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch = trainer.current_epoch
        # epoch-interval LR schedulers step before on_train_epoch_end: keep the LR this epoch trained with
        self._epoch_lr = float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else 0.0
        if self.target is not None and self._steering.steps_per_epoch == 0:
            self._steering.start(trainer, self.stop_epoch, self.target.argument)
            self._steering.start_epoch = self.warmup_epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.schedule == ProxSchedule.epoch:
            if self.budget is None:
                self.prox(pl_module, self._epoch_lr)
            elif self._epoch >= self.warmup_epochs:
                self._lr = self._epoch_lr
                self._steering.step(self.budget, self._steps, self._steering.deadline - self._epoch)
        self._attach(pl_module)
        metrics = {**self.regularizer.metrics(), **self.extra_metrics(pl_module), **self._target_metrics()}
        for key, value in metrics.items():  # equal on every rank: the mean over ranks is the value
            pl_module.log(
                f"{self.log_prefix}/{key}", float(value), on_epoch=True, on_step=False, sync_dist=True
            )

    def extra_metrics(self, pl_module: pl.LightningModule) -> dict[str, float]:
        """More values to log at each epoch end (a subclass hook)."""
        return {}

    def _target_metrics(self) -> dict[str, float]:
        if self.budget is None or self.target is None:
            return {}
        lr = self._lr
        strength = self._steering.unit / lr if lr > 0 else 0.0  # what a plain strength would have been
        return {f"target_{self.target.measure}": self.budget.goal(), "strength": strength}

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._module = None

    def state_dict(self) -> dict[str, Any]:
        ratio = {"budget_ratio": self.budget.ratio} if self.budget is not None else {}
        return {"steps": self._steps, **ratio, **self.regularizer.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._steps = int(state_dict.get("steps", 0))
        self._ratio = float(state_dict.get("budget_ratio", 1.0))
        self.regularizer.load_state_dict(state_dict)
