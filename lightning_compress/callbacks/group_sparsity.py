"""Group lasso / sparse group lasso on neurons and channels, applied as a proximal step during training."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.hooks import RemovableHandle

from lightning_compress.callbacks._common import check_groups_args, check_nonneg, example_inputs
from lightning_compress.functional.group_lasso import (
    GroupPiece,
    batched_group_prox_,
    sliced_group_sizes,
    sliced_group_sq_norms,
    sliced_penalty,
    sliced_penalty_grad_,
    sliced_prox_,
    trimmed,
)
from lightning_compress.surgery.compact import effective_size, group_cost_weights
from lightning_compress.surgery.groups import LayerSelector, NeuronGroups, find_groups
from lightning_compress.surgery.history import enable_history_restore, history_version
from lightning_compress.surgery.inputs import INPUTS_SUFFIX, input_groups

__all__ = ["GroupSparsity"]

SCHEDULES = ("step", "epoch", "subgradient")
COSTS = ("params", "macs")


class GroupSparsity(Callback):
    r"""Drive whole neurons/channels to exactly zero (Alvarez & Salzmann, NIPS 2016).

    The penalty is :math:`\sum_l \lambda_l \big[(1-\alpha)\sqrt{P_l}\sum_n \|\theta_{ln}\|_2 + \alpha\|\theta_l\|_1\big]`
    with one group per neuron (all parameters coupled to it, see ``groups``). With ``schedule="step"``
    its proximal operator runs after every N-th optimizer step, with step size ``lr * N`` (the
    optimizer's current learning rate); with ``"epoch"``, once at each epoch end with step size ``lr``
    (the paper's schedule: much weaker at equal strength); with ``"subgradient"`` the penalty's
    subgradient is added to the gradients before each step (no exact zeros: prune with a threshold).

    The prox is attached to the optimizer's own step (``register_step_post_hook``): it runs once per
    real step, whatever the gradient accumulation, and not at all for steps that AMP skips.

    Use :class:`~lightning_compress.callbacks.StructuredPruning` after this callback to remove the zeroed
    groups physically. Logs ``group_sparsity/penalty``, ``group_sparsity/zero_groups``, per-layer zero
    counts, and ``group_sparsity/effective_params`` / ``effective_macs`` (size once zeros are removed).

    Args:
        strength: :math:`\lambda`, the default strength of every layer.
        l1_ratio: :math:`\alpha` in [0, 1]: 0 is group lasso, >0 sparse group lasso.
        layer_strengths: Name pattern -> strength, overriding ``strength`` for matching layers.
        groups: ``"incoming"`` (the paper's groups: a neuron's weights, bias and norm entries),
            ``"coupled"`` (also the next layers' input weights) or ``"bn"``: where every layer producing a
            channel is followed by a BatchNorm, only the BatchNorm's scale and shift (the filter's scale
            is free under normalization, so the loss does not resist a penalty on it; the other layers
            keep their incoming groups). On the small ResNet it did worse than ``"incoming"``
            (``benchmarks/RESULTS.md``). :class:`StructuredPruning` decides with the same groups by default.
        include: Only layers matching these name patterns or types.
        exclude: Never these layers. The output layer is never regularized.
        schedule: ``"step"``, ``"epoch"`` or ``"subgradient"``.
        every_n_steps: Prox every N optimizer steps (``schedule="step"``), with N times the step size. The
            prox reads every regularized weight twice: on a small MLP whose step takes a few ms it costs
            about 6% of training time at N=1 and 3% at N=2 (LeNet-300-100 on 2 CPU cores); on conv nets
            under 1%.
        warmup_epochs: Epochs without regularization.
        ramp_epochs: After warm-up, epochs over which the strength grows linearly to its full value.
            Groups then die later; on LeNet-5 by MACs this helped at 80-90% fewer MACs.
        input_layers: Linear layers whose input features (e.g. pixels) are groups too: one group per
            weight column, removed by ``StructuredPruning(input_layers=...)``. Peers cannot do this.
        input_strength: Strength of the input-feature groups (default: ``strength``).
        cost: What a group's weight stands for. ``"params"`` is the paper's :math:`\sqrt{P}`. ``"macs"``
            multiplies it by the MACs a group's removal saves per parameter it saves (measured with
            :func:`~lightning_compress.surgery.group_costs`), over the same ratio for the whole model: a
            conv channel on a large feature map weighs more than a fully connected neuron of equal size,
            so the lasso removes compute, not just parameters. Re-measured after every shape change.
        cost_exponent: With ``cost="macs"``, the ratio is raised to this power: 1 is the full MACs
            weighting, 0 the paper's; values in between temper how hard early, high-resolution layers
            are pushed (a sweepable knob).
        keep_ratio: The trimmed group lasso (Yun et al., NeurIPS 2019): in every layer, the
            ``ceil(keep_ratio * width)`` groups of largest norm (width at fit start; with groups of
            unequal size, those whose penalty costs the most: the exact prox when ``l1_ratio=0``) are not
            penalized. The lasso then cannot take a layer below that floor (with ``cost="macs"`` it otherwise
            strips the early, high-resolution layers to one or two channels) and does not shrink
            the survivors. 0 is the plain group lasso. Input-feature groups are not trimmed. On the
            small ResNet at ~96% fewer MACs, ``keep_ratio=0.15`` kept stage 0 at 3 channels (1 without)
            and raised test accuracy from 84.6% to 87.4% (3 seeds, ``benchmarks/RESULTS.md``).
        stop_epoch: From this epoch on (0-based), no regularization: with :class:`StructuredPruning`
            removing the zeroed groups, the remaining epochs fine-tune the smaller model without the
            lasso's shrinkage of the surviving weights.
        log_effective_size: Log the size the model would have with its zero groups removed (one copy
            and trace per epoch).

    Example:
        >>> GroupSparsity(strength=1e-4, l1_ratio=0.5, schedule="step")
        GroupSparsity(strength=0.0001, l1_ratio=0.5, groups='incoming', schedule='step')
    """

    def __init__(
        self,
        strength: float = 1e-4,
        *,
        l1_ratio: float = 0.0,
        layer_strengths: Mapping[str, float] | None = None,
        groups: str = "incoming",
        include: Sequence[LayerSelector] | None = None,
        exclude: Sequence[LayerSelector] = (),
        schedule: str = "step",
        every_n_steps: int = 1,
        warmup_epochs: int = 0,
        ramp_epochs: int = 0,
        stop_epoch: int | None = None,
        input_layers: Sequence[str] = (),
        input_strength: float | None = None,
        cost: str = "params",
        cost_exponent: float = 1.0,
        keep_ratio: float = 0.0,
        log_effective_size: bool = True,
    ) -> None:
        check_nonneg(strength, "strength")
        if not 0.0 <= l1_ratio <= 1.0:
            raise ValueError(f"l1_ratio must be in [0, 1], got {l1_ratio=}")
        for pattern, value in (layer_strengths or {}).items():
            check_nonneg(value, f"layer_strengths[{pattern!r}]")
        check_groups_args(groups, include, exclude)
        if isinstance(input_layers, str):
            raise TypeError(f"input_layers must be a list of layer names, got {input_layers!r}")
        if input_strength is not None:
            check_nonneg(input_strength, "input_strength")
        if cost not in COSTS:
            raise ValueError(f"cost must be one of {COSTS}, got {cost=!r}")
        check_nonneg(cost_exponent, "cost_exponent")
        if not (isinstance(keep_ratio, (int, float)) and 0.0 <= keep_ratio < 1.0):
            raise ValueError(f"keep_ratio must be a fraction in [0, 1), got {keep_ratio=!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule=!r}")
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"every_n_steps must be an int >= 1, got {every_n_steps=}")
        if warmup_epochs < 0 or ramp_epochs < 0:
            raise ValueError(
                f"warmup_epochs and ramp_epochs must be >= 0, got {warmup_epochs=}, {ramp_epochs=}"
            )
        if stop_epoch is not None and (not isinstance(stop_epoch, int) or stop_epoch <= warmup_epochs):
            raise ValueError(f"stop_epoch must be an int > warmup_epochs, got {stop_epoch=}")
        self.strength = float(strength)
        self.l1_ratio = float(l1_ratio)
        self.layer_strengths = dict(layer_strengths or {})
        self.groups = groups
        self.include = list(include) if include else None
        self.exclude = list(exclude)
        self.schedule = schedule
        self.every_n_steps = every_n_steps
        self.warmup_epochs = warmup_epochs
        self.ramp_epochs = ramp_epochs
        self.stop_epoch = stop_epoch
        self.input_layers = list(input_layers)
        self.input_strength = self.strength if input_strength is None else float(input_strength)
        self.cost = cost
        self.cost_exponent = float(cost_exponent)
        self.keep_ratio = float(keep_ratio)
        self.log_effective_size = log_effective_size
        self._steps = 0
        self._epoch = 0
        self._epoch_lr = 0.0
        self._families: list[tuple[NeuronGroups, list[GroupPiece], torch.Tensor, float]] = []
        self._batched: tuple[list[list[GroupPiece]], list[int], torch.Tensor, list[int]] = (
            [],
            [],
            torch.empty(0),
            [],
        )
        self._widths: dict[str, int] = {}  # layer -> number of groups when first seen (keep_ratio's base)
        self._keep: dict[str, int] = {}
        self._history_len = -1
        self._module: pl.LightningModule | None = None
        self._handles: list[RemovableHandle] = []

    def __repr__(self) -> str:
        return (
            f"GroupSparsity(strength={self.strength}, l1_ratio={self.l1_ratio}, groups={self.groups!r}, "
            f"schedule={self.schedule!r})"
        )

    @property
    def state_key(self) -> str:
        return self._generate_state_key(strength=self.strength, l1_ratio=self.l1_ratio, groups=self.groups)

    # ----------------------------------------------------------------- groups
    def _layer_strength(self, family: NeuronGroups) -> float:
        for pattern, value in self.layer_strengths.items():
            if any(fnmatch.fnmatchcase(name, pattern) for name in family.layers):
                return float(value)
        return self.strength

    def _refresh(self, pl_module: pl.LightningModule) -> None:
        """(Re)build the groups when the model's shape changed since the last call."""
        length = history_version(pl_module)
        if length == self._history_len and self._families:
            return
        families = find_groups(
            pl_module, example_inputs(pl_module), include=self.include, exclude=self.exclude
        )
        if not families:
            raise ValueError("no layer to regularize: include/exclude leave no prunable layer")
        all_layers = [n for f in families for n in f.layers]
        for pattern in self.layer_strengths:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in all_layers):
                raise ValueError(
                    f"layer_strengths pattern {pattern!r} matches no regularized layer: {all_layers}"
                )
        self._families = []
        self._sqrt: dict[str, torch.Tensor] = {}
        weights = (
            group_cost_weights(pl_module, families, example_inputs(pl_module), self.cost_exponent)
            if self.cost == "macs"
            else {}
        )
        inputs = [input_groups(pl_module, name) for name in self.input_layers]
        self._keep = {}
        for family in families:
            width = self._widths.setdefault(family.name, family.num_groups)
            # 1e-9: 0.07 * 100 is 7.000000000000001 in floating point, and its ceiling would be 8
            self._keep[family.name] = math.ceil(self.keep_ratio * width - 1e-9) if self.keep_ratio else 0
        for family in [*families, *inputs]:
            is_input = family.name.endswith(INPUTS_SUFFIX)
            pieces = family.pieces(pl_module, "incoming" if is_input else self.groups)
            sizes = sliced_group_sizes(pieces, family.num_groups)
            self._sqrt[family.name] = sizes.sqrt()
            lam = self.input_strength if is_input else self._layer_strength(family)
            lam *= weights.get(INPUTS_SUFFIX if is_input else family.name, 1.0)
            self._families.append((family, pieces, sizes, lam))
        active = [(f, pieces, lam) for f, pieces, _, lam in self._families if lam > 0]
        self._batched = (
            [pieces for _, pieces, _ in active],
            [f.num_groups for f, _, _ in active],
            torch.cat([self._sqrt[f.name] * lam for f, _, lam in active]) if active else torch.empty(0),
            [self._keep.get(f.name, 0) for f, _, _ in active],
        )
        self._history_len = length

    def _factor(self) -> float:
        """Fraction of the full strength in force this epoch (warm-up, then a linear ramp)."""
        if self._epoch < self.warmup_epochs:
            return 0.0
        if self.stop_epoch is not None and self._epoch >= self.stop_epoch:
            return 0.0
        if self.ramp_epochs == 0:
            return 1.0
        return min(1.0, (self._epoch - self.warmup_epochs + 1) / self.ramp_epochs)

    # ------------------------------------------------------------- the math
    def prox(self, pl_module: pl.LightningModule, step: float) -> None:
        """Apply the proximal operator with step size ``step`` to every group family."""
        factor = self._factor()
        if factor == 0.0 or step == 0.0:
            return
        self._refresh(pl_module)
        if self.l1_ratio == 0.0:  # plain group lasso: all families in one batched prox
            families, num_groups, thresholds, keep = self._batched
            batched_group_prox_(families, num_groups, thresholds, step * factor, keep)
            return
        for family, pieces, sizes, lam in self._families:
            if lam > 0:
                sliced_prox_(
                    pieces,
                    family.num_groups,
                    step,
                    self._trimmed(family, pieces, lam * factor, sizes),
                    self.l1_ratio,
                    sqrt_sizes=self._sqrt[family.name],
                )

    def _trimmed(
        self, family: NeuronGroups, pieces: list[GroupPiece], lam: float, sizes: torch.Tensor
    ) -> float | torch.Tensor:
        """``lam``, or one strength per group with the family's ``keep`` largest penalty terms at zero."""
        keep = self._keep.get(family.name, 0)
        if keep == 0:
            return lam
        sq = sliced_group_sq_norms(pieces, family.num_groups)
        return trimmed(torch.full_like(sq, lam), sq * sizes, keep)  # (sqrt(P_g) ||w_g||)^2

    def penalty(self, pl_module: pl.LightningModule) -> float:
        """The current value of the penalty (at full strength)."""
        self._refresh(pl_module)
        with torch.no_grad():
            return sum(
                float(
                    sliced_penalty(
                        pieces,
                        family.num_groups,
                        self._trimmed(family, pieces, lam, sizes),
                        self.l1_ratio,
                        sizes,
                    )
                )
                for family, pieces, sizes, lam in self._families
            )

    def zero_groups(self, pl_module: pl.LightningModule) -> dict[str, int]:
        """Number of groups exactly at zero, by root layer."""
        self._refresh(pl_module)
        with torch.no_grad():
            return {
                family.name: int((sliced_group_sq_norms(pieces, family.num_groups) == 0).sum())
                for family, pieces, _, _ in self._families
            }

    # ---------------------------------------------------------------- hooks
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":  # a checkpoint's widths, restored after this, take precedence
            self._widths = {}
        enable_history_restore(pl_module, lambda: example_inputs(pl_module))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._module = pl_module
        self._history_len = -1
        self._refresh(pl_module)
        if self.schedule == "step":
            for optimizer in trainer.optimizers:
                self._handles.append(optimizer.register_step_post_hook(self._after_step))

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._steps += 1
        if self._module is not None and self._steps % self.every_n_steps == 0:
            lr = float(optimizer.param_groups[0]["lr"])
            self.prox(self._module, lr * self.every_n_steps)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.schedule != "subgradient" or self._factor() == 0.0:
            return
        self._refresh(pl_module)
        for family, _, sizes, lam in self._families:
            params = family.parameters(pl_module, self.groups)
            if lam == 0 or any(p.grad is None for p in params):
                continue
            pieces = family.pieces(pl_module, self.groups)
            grads = [p.grad for p in params if p.grad is not None]
            lam_g = self._trimmed(family, pieces, lam * self._factor(), sizes)
            sliced_penalty_grad_(pieces, grads, family.num_groups, lam_g, self.l1_ratio, sizes)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch = trainer.current_epoch
        # epoch-interval LR schedulers step before on_train_epoch_end: keep the LR this epoch trained with
        self._epoch_lr = float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else 0.0

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.schedule == "epoch":
            self.prox(pl_module, self._epoch_lr)
        zeros = self.zero_groups(pl_module)
        metrics = {
            "group_sparsity/penalty": self.penalty(pl_module),
            "group_sparsity/zero_groups": sum(zeros.values()),
        }
        metrics.update({f"group_sparsity/zero/{name}": count for name, count in zeros.items()})
        if self.log_effective_size:
            size = effective_size(
                pl_module, example_inputs(pl_module), include=self.include, exclude=self.exclude
            )
            metrics["group_sparsity/effective_params"] = size["params"]
            metrics["group_sparsity/effective_macs"] = size["macs"]
        for key, value in metrics.items():  # equal on every rank: the mean over ranks is the value
            pl_module.log(key, float(value), on_epoch=True, on_step=False, sync_dist=True)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._module = None

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self._steps, "widths": dict(self._widths)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._steps = int(state_dict.get("steps", 0))
        self._widths = {str(k): int(v) for k, v in state_dict.get("widths", {}).items()}
