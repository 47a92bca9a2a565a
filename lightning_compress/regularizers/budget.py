"""A size target for the group lasso: which groups go, shrunk to exactly zero by a deadline step.

The strength is not guessed: at each selection the groups are ranked by their norm over the threshold
the lasso gives them (the order in which a uniform lasso would zero them), and the fewest lowest-ranked
groups whose removal brings the model to the target are chosen, every layer's floor kept. Only the
chosen groups are shrunk, by a step that grows as the deadline nears (:func:`closing_unit`), so they
reach zero on the deadline step whatever the optimizer's scale; the unchosen are left to the loss. The
size can therefore not fall below the target by more than one group, nor a layer be emptied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from lightning_compress._checks import ArgumentError
from lightning_compress.functional import (
    BudgetError,
    batched_group_prox_,
    closing_unit,
    fewest_to_budget,
    sliced_group_sq_norms,
)
from lightning_compress.regularizers.group_lasso import GroupLasso
from lightning_compress.surgery import SizeModel

__all__ = ["GroupBudget", "SizeTarget", "budget_error", "size_target"]

Measure = Literal["params", "macs"]


@dataclass(frozen=True)
class SizeTarget:
    """A size to reach: ``value`` is a share of the dense model in (0, 1) or a count (>= 1).

    Example:
        >>> SizeTarget("params", 0.2).absolute({"params": 1000, "macs": 5000})
        200.0
        >>> SizeTarget("macs", 800).absolute({"params": 1000, "macs": 5000})
        800.0
    """

    measure: Measure
    value: float

    @property
    def given(self) -> str:
        """The value as the user wrote it (``0.2``, ``1000000``)."""
        return f"{self.value:g}" if self.value < 1 else str(int(self.value))

    @property
    def argument(self) -> str:
        """The argument it was given as (``target_params`` or ``target_macs``)."""
        return f"target_{self.measure}"

    def absolute(self, dense: dict[str, int]) -> float:
        """The target as a count, given the dense model's; one-line error if it is not below it."""
        full = float(dense[self.measure])
        count = self.value * full if self.value < 1 else float(self.value)
        if count >= full:
            raise ArgumentError(
                self.argument,
                f"{self.argument}={self.given} is not below the model's {self.measure} ({full:,.0f})",
            )
        return count

    def describe(self, dense: dict[str, int]) -> str:
        """``"53,322 params (20.0% of dense)"``."""
        count = self.absolute(dense)
        return f"{count:,.0f} {self.measure} ({100 * count / dense[self.measure]:.1f}% of dense)"


def size_target(target_params: object, target_macs: object) -> SizeTarget | None:
    """The target given by at most one of the two arguments, checked; ``None`` for neither.

    Example:
        >>> size_target(None, 0.25)
        SizeTarget(measure='macs', value=0.25)
        >>> size_target(1.5, None)
        Traceback (most recent call last):
        ...
        lightning_compress._checks.ArgumentError: target_params must be a share of the dense size in (0, 1) or a count >= 1, got target_params=1.5
    """
    if target_params is not None and target_macs is not None:
        raise ArgumentError("target_macs", "give at most one of target_params and target_macs")
    for measure, value in (("params", target_params), ("macs", target_macs)):
        if value is None:
            continue
        name = f"target_{measure}"
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (0 < value < 1 or (value >= 1 and float(value).is_integer()))
        ):
            raise ArgumentError(
                name,
                f"{name} must be a share of the dense size in (0, 1) or a count >= 1, got {name}={value!r}",
            )
        return SizeTarget(measure, float(value))  # type: ignore[arg-type]  # measure is one of the two
    return None


def budget_error(target: SizeTarget, err: BudgetError, dense: dict[str, int], floors: str) -> ArgumentError:
    """The one-line error of a target that the floors make impossible.

    Example:
        >>> str(budget_error(SizeTarget("params", 10), BudgetError(40, 10), {"params": 100}, "the floors"))
        'target_params=10 cannot be reached: the floors leave 40 params (40.0% of dense); ask for a larger size'
    """
    left = err.smallest
    return ArgumentError(
        target.argument,
        f"{target.argument}={target.given} cannot be reached: {floors} leave{'s' if floors.startswith('rank') else ''} "
        f"{left:,.0f} {target.measure} ({100 * left / dense[target.measure]:.1f}% of dense); ask for a larger size",
    )


class GroupBudget:
    """Steers a :class:`GroupLasso` to a :class:`SizeTarget` (see the module docstring).

    Call :meth:`select` now and then (the chosen set follows the weights), :meth:`shrink_` after each
    optimizer step with the steps left to the deadline, :meth:`hold_` after it, and :meth:`calibrate` with
    an exact measurement when one is taken (the MACs of parameter-free operations are modelled as fixed).

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> model = LeNet300100(hidden=(8, 6)); lasso = GroupLasso()
        >>> lasso.attach(model, torch.zeros(1, 1, 28, 28))
        >>> budget = GroupBudget(lasso, SizeTarget("params", 0.5))
        >>> budget.select(); unit = budget.shrink_(steps_left=2)   # one step before the deadline
        >>> budget.hold_()   # the deadline: the chosen groups exactly zero
        >>> budget.size()["params"] <= 0.5 * budget.dense["params"], sum(lasso.zero_groups().values()) > 0
        (True, True)
    """

    def __init__(self, lasso: GroupLasso, target: SizeTarget) -> None:
        self.lasso = lasso
        self.target = target
        self.ratio = 1.0  # exact size over the modelled one, at the last calibration
        self._version = -1
        self._sizes: SizeModel | None = None
        self.dense: dict[str, int] = {}
        self.chosen = torch.zeros(0, dtype=torch.bool)
        self._free = torch.zeros(0, dtype=torch.bool)
        self.boundary = 0.0
        self.stale = True  # no selection since the model last changed shape

    def _model(self) -> SizeModel:
        families = self.lasso.families  # refreshed
        if self._sizes is None or self._version != self.lasso.version:
            self._sizes = SizeModel(
                self.lasso.model, [f.groups for f in families], self.lasso.example_inputs()
            )
            self._version = self.lasso.version
            self.ratio = 1.0
            if not self.dense:
                self.dense = dict(self._sizes.dense)
            self.chosen = torch.zeros(self._sizes.num_groups, dtype=torch.bool)
            self._free = self.chosen.clone()
            self.stale = True
        return self._sizes

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each group's norm over its threshold coefficient, and which groups may go (not a floor)."""
        scores, free = [], []
        for f in self.lasso.families:
            n = f.groups.num_groups
            norms = sliced_group_sq_norms(f.pieces, n).sqrt().double().cpu()
            score = norms / (f.sqrt_sizes.double().cpu().clamp_min(1e-30) * max(f.strength, 1e-30))
            may_go = torch.full((n,), f.strength > 0)
            floor = min(max(f.keep, 1), n)
            may_go[torch.topk(score, floor).indices] = False
            scores.append(score)
            free.append(may_go)
        return torch.cat(scores), torch.cat(free)

    def goal(self) -> float:
        """The target as a count."""
        self._model()
        return self.target.absolute(self.dense)

    def size(self, removed: torch.Tensor | None = None) -> dict[str, float]:
        """The calibrated size with ``removed`` gone (default: the groups at zero now)."""
        sizes = self._model()
        if removed is None:
            scores, _ = self._scores()
            removed = scores == 0
        return {k: v * self.ratio for k, v in sizes.size(removed).items()}

    def check(self) -> None:
        """One-line error now if the floors make the target unreachable (or it is not below dense)."""
        self.select()

    def select(self) -> None:
        """Choose the groups that go: the fewest lowest-scored whose removal meets the target."""
        sizes = self._model()
        scores, free = self._scores()
        measure, goal = self.target.measure, self.goal()
        try:
            self.chosen = fewest_to_budget(scores, free, lambda m: sizes.size(m)[measure] * self.ratio, goal)
        except BudgetError as err:
            raise budget_error(
                self.target, err, self.dense, "the floors (one group a layer, keep_ratio)"
            ) from None
        self._free = free
        self.boundary = float(scores[self.chosen].max()) if bool(self.chosen.any()) else 0.0
        self.stale = False

    def _thresholds(self, unit: float, background: float = 0.0) -> torch.Tensor:
        parts = [f.sqrt_sizes * f.strength for f in self.lasso.families]
        coefficient = torch.cat(parts)
        chosen = self.chosen.to(coefficient)
        return coefficient * (
            chosen * max(unit, background) + self._free.to(coefficient) * (1 - chosen) * background
        )

    def shrink_(self, steps_left: int, total_steps: int | None = None) -> float:
        """Shrink the chosen groups by the closing step for ``steps_left`` steps and, with ``total_steps``,
        every other group that may go by the constant step that would take a group at the boundary to
        zero in ``total_steps`` (the plain lasso's uniform shrinkage: the loss decides which groups it
        keeps alive, and a group that dies frees the budget for another); returns the closing step."""
        self._model()
        if self.stale:
            self.select()
        unit = closing_unit(self.boundary, steps_left)
        background = closing_unit(self.boundary, total_steps) if total_steps else 0.0
        families = self.lasso.families
        if unit > 0 and bool(self.chosen.any()):
            thresholds = self._thresholds(unit, background)
            batched_group_prox_(
                [f.pieces for f in families], [f.groups.num_groups for f in families], thresholds, 1.0
            )
        return unit

    def hold_(self) -> None:
        """Keep the chosen groups at exactly zero (after the deadline)."""
        self._model()
        if bool(self.chosen.any()):
            families = self.lasso.families
            thresholds = self._thresholds(float("inf")).nan_to_num(nan=0.0)
            batched_group_prox_(
                [f.pieces for f in families], [f.groups.num_groups for f in families], thresholds, 1.0
            )

    def calibrate(self, exact: dict[str, int]) -> None:
        """Match the modelled size of the current zeros to an exact measurement of it."""
        self.ratio = 1.0
        modelled = self.size()[self.target.measure]
        self.ratio = float(exact[self.target.measure]) / max(modelled, 1.0)
