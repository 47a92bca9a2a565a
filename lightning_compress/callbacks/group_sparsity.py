"""Group lasso / sparse group lasso on neurons and channels, applied as a proximal step during training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from lightning_compress._checks import ArgumentError
from lightning_compress.callbacks._common import example_inputs
from lightning_compress.callbacks._proximal import ProximalCallback, ProxSchedule, ProxScheduleName
from lightning_compress.regularizers import Cost, GroupBudget, GroupLasso, size_target
from lightning_compress.regularizers.group_lasso import CostName
from lightning_compress.surgery import GroupMode, LayerSelector, effective_size
from lightning_compress.surgery.groups import GroupModeName

__all__ = ["GroupSparsity"]


class GroupSparsity(ProximalCallback):
    r"""Drive whole neurons/channels to exactly zero (Alvarez & Salzmann, NIPS 2016).

    A thin shell over :class:`~lightning_compress.regularizers.GroupLasso`: the penalty
    :math:`\sum_l \lambda_l \big[(1-\alpha)\sqrt{P_l}\sum_n \|\theta_{ln}\|_2 + \alpha\|\theta_l\|_1\big]`
    with one group per neuron, its exact prox applied during fit. With ``schedule="step"`` the prox runs
    after every N-th optimizer step with step size ``lr * N``; with ``"epoch"``, once at each epoch end
    with step size ``lr`` (the paper's schedule: much weaker at equal strength); with ``"subgradient"``
    the penalty's subgradient is added to the gradients before each step (no exact zeros: prune with a
    threshold). Put :class:`~lightning_compress.callbacks.StructuredPruning` after it to remove the
    zeroed groups physically.

    Logs ``group_sparsity/penalty``, ``group_sparsity/zero_groups``, per-layer ``zero/<layer>`` counts and,
    with ``log_effective_size``, ``effective_params`` / ``effective_macs`` (the size once zeros are removed).

    Args:
        strength: :math:`\lambda`, the default strength of every layer (default 1e-4). The prox step is
            ``lr * strength``: with Adam or AdamW, whose updates do not scale with the gradient, the same
            size needs a far larger strength than with SGD (measured in ``benchmarks/RESULTS.md``).
        target_params: Instead of a strength, the size to reach: a share of the dense model's parameters
            in (0, 1) or a count. The groups a uniform lasso would zero first are chosen until removing
            them meets the target (floors kept, no layer emptied); only they are shrunk, to exactly zero
            by the end of epoch ``stop_epoch - 1`` (else of the fit), and held there. Logs
            ``target_params``, the effective size and the equivalent ``strength`` each epoch.
        target_macs: The same in multiply-accumulates (``cost`` still decides which groups go first).
        l1_ratio: :math:`\alpha` in [0, 1]: 0 is group lasso, >0 sparse group lasso.
        layer_strengths: Name pattern -> strength, overriding ``strength`` for matching layers.
        groups: ``"incoming"`` (the paper's), ``"coupled"`` or ``"bn"`` (see
            :class:`~lightning_compress.regularizers.GroupLasso`). ``StructuredPruning`` decides with the
            same groups by default.
        include: Only layers matching these name patterns or module types.
        exclude: Never these layers. The output layer is never regularized.
        schedule: ``"step"``, ``"epoch"`` or ``"subgradient"``.
        every_n_steps: Prox every N optimizer steps (``schedule="step"``) with N times the step size. The
            prox reads every regularized weight twice: on a small MLP whose step takes a few ms, N=2 or 4
            halves or quarters its share of training time.
        warmup_epochs: Epochs without regularization.
        ramp_epochs: After warm-up, epochs over which the strength grows linearly to its full value, so
            groups die later.
        stop_epoch: From this epoch on (0-based) no regularization: with ``StructuredPruning`` removing
            the zeroed groups, the remaining epochs fine-tune the smaller model without shrinkage.
        input_layers: Linear layers whose input features (e.g. pixels) are groups too, one per weight
            column, removed by ``StructuredPruning(input_layers=...)``.
        input_strength: Strength of the input-feature groups (default: ``strength``).
        cost: ``"params"`` (the paper's :math:`\sqrt{P}` weights) or ``"macs"`` (each layer also weighted by
            the MACs a group's removal saves per parameter, relative to the whole model's ratio).
        cost_exponent: With ``cost="macs"``, that ratio is raised to this power (0: the paper's weights).
        keep_ratio: The trimmed group lasso: ``ceil(keep_ratio * width)`` groups per layer (width at fit
            start) stay unpenalized, a floor under every layer. 0 is the plain group lasso.
        log_effective_size: Log the size the model would have with its zero groups removed (one copy
            and trace per epoch).
        input_key: The model input's key in a dict batch (default: the first of ``BATCH_INPUT_KEYS`` it
            holds; a tuple or list batch's first item; a tensor batch itself).
        example_input: An input to trace the model with (a batch of one), when the module has no
            ``example_input_array``; without either, the first training batch's input is used.

    Example:
        >>> GroupSparsity(strength=1e-4, l1_ratio=0.5, schedule="step")
        GroupSparsity(strength=0.0001, l1_ratio=0.5, groups='incoming', schedule='step')
    """

    log_prefix = "group_sparsity"

    def __init__(
        self,
        strength: float | None = None,
        *,
        target_params: float | None = None,
        target_macs: float | None = None,
        l1_ratio: float = 0.0,
        layer_strengths: Mapping[str, float] | None = None,
        groups: GroupMode | GroupModeName = GroupMode.incoming,
        include: Sequence[LayerSelector] | None = None,
        exclude: Sequence[LayerSelector] = (),
        schedule: ProxSchedule | ProxScheduleName = ProxSchedule.step,
        every_n_steps: int = 1,
        warmup_epochs: int = 0,
        ramp_epochs: int = 0,
        stop_epoch: int | None = None,
        input_layers: Sequence[str] = (),
        input_strength: float | None = None,
        cost: Cost | CostName = Cost.params,
        cost_exponent: float = 1.0,
        keep_ratio: float = 0.0,
        log_effective_size: bool = True,
        input_key: str | None = None,
        example_input: Any = None,
    ) -> None:
        super().__init__(
            schedule=schedule,
            every_n_steps=every_n_steps,
            warmup_epochs=warmup_epochs,
            ramp_epochs=ramp_epochs,
            stop_epoch=stop_epoch,
            input_key=input_key,
            example_input=example_input,
        )
        target = size_target(target_params, target_macs)
        if target is not None and l1_ratio:
            raise ArgumentError(
                "l1_ratio", f"{target.argument} steers the group lasso alone: l1_ratio must be 0"
            )
        strength = self._set_target(target, strength, default=1e-4)
        self.regularizer: GroupLasso = GroupLasso(
            strength,
            l1_ratio=l1_ratio,
            layer_strengths=layer_strengths,
            groups=groups,
            include=include,
            exclude=exclude,
            input_layers=input_layers,
            input_strength=input_strength,
            cost=cost,
            cost_exponent=cost_exponent,
            keep_ratio=keep_ratio,
        )
        self.log_effective_size = log_effective_size or target is not None

    @property
    def strength(self) -> float:
        return self.regularizer.strength

    @property
    def groups(self) -> GroupMode:
        return self.regularizer.groups

    def __repr__(self) -> str:
        r = self.regularizer
        return (
            f"GroupSparsity(strength={r.strength}, l1_ratio={r.l1_ratio}, groups={r.groups.value!r}, "
            f"schedule={self.schedule.value!r})"
        )

    @property
    def state_key(self) -> str:
        r = self.regularizer
        return self._generate_state_key(strength=r.strength, l1_ratio=r.l1_ratio, groups=r.groups.value)

    def penalty(self, pl_module: pl.LightningModule) -> float:
        """The current value of the penalty at full strength."""
        self._attach(pl_module)
        return float(self.regularizer.penalty())

    def zero_groups(self, pl_module: pl.LightningModule) -> dict[str, int]:
        """Number of groups exactly at zero, by root layer."""
        self._attach(pl_module)
        return self.regularizer.zero_groups()

    def make_budget(self) -> GroupBudget:
        assert self.target is not None
        return GroupBudget(self.regularizer, self.target)

    def effective_size(self, pl_module: pl.LightningModule) -> dict[str, int]:
        """Parameters and MACs the model would have with its zero groups removed."""
        r = self.regularizer
        return effective_size(pl_module, example_inputs(pl_module), include=r.include, exclude=r.exclude)

    def extra_metrics(self, pl_module: pl.LightningModule) -> dict[str, float]:
        if not self.log_effective_size:
            return {}
        size = self.effective_size(pl_module)
        if self.budget is not None:
            self.budget.calibrate(size)
        return {"effective_params": float(size["params"]), "effective_macs": float(size["macs"])}

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.budget is None or self.target is None:
            return
        measure, reached = self.target.measure, self.effective_size(pl_module)[self.target.measure]
        dense = self.budget.dense[measure]
        rank_zero_info(
            f"GroupSparsity: {reached:,} {measure} ({100 * reached / dense:.1f}% of dense) against the "
            f"target {self.target.describe(self.budget.dense)}"
        )
