"""A size target for the nuclear norm: which singular values go, shrunk to exactly zero by a deadline.

As :class:`~lightning_compress.regularizers.GroupBudget` for neurons: the singular values are ranked by
their value over their layer's strength (the order in which a uniform nuclear norm would remove them),
the fewest lowest-ranked whose removal brings the model to the target are chosen (rank 1 kept in every
layer), and only they are shrunk to zero by the deadline, the others at a constant background rate. A
layer at rank ``r`` costs ``min(m n, r (m + n))`` (its split only where it saves), times its output
positions for MACs; the rest of the model is counted as it is.
"""

from __future__ import annotations

import torch

from lightning_compress.functional import (
    BudgetError,
    as_matrix,
    closing_unit,
    fewest_to_budget,
    shrink_spectrum,
)
from lightning_compress.regularizers.budget import SizeTarget, budget_error
from lightning_compress.regularizers.nuclear_norm import NuclearNorm
from lightning_compress.surgery import layer_counts

__all__ = ["RankBudget"]


class RankBudget:
    """Steers a :class:`NuclearNorm` to a :class:`SizeTarget` (same protocol as ``GroupBudget``).

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> model = LeNet300100(hidden=(64, 32)); norm = NuclearNorm()
        >>> norm.attach(model, torch.zeros(1, 1, 28, 28))
        >>> budget = RankBudget(norm, SizeTarget("params", 0.5))
        >>> budget.select(); budget.hold_()   # the chosen singular values at zero now
        >>> budget.size()["params"] <= 0.5 * budget.dense["params"], norm.ranks["1"] < 64
        (True, True)
    """

    def __init__(self, norm: NuclearNorm, target: SizeTarget) -> None:
        self.norm = norm
        self.target = target
        self.ratio = 1.0
        self.dense: dict[str, int] = {}
        self.stale = True
        self.boundary = 0.0
        self.ranks: dict[str, int] = {}
        self._version = -1
        self._shapes: list[tuple[int, int]] = []
        self._units: dict[str, torch.Tensor] = {}
        self._fixed: dict[str, float] = {}

    def _model(self) -> None:
        names = self.norm.layer_names()  # refreshed
        if self._version == self.norm.version:
            return
        model = self.norm.model
        params, macs, per_module = layer_counts(model, self.norm.example_inputs())
        if not self.dense:
            self.dense = {"params": params, "macs": macs}
        layers = [model.get_submodule(n) for n in names]
        matrices = [as_matrix(self.norm.weight(n)) for n in names]
        self._shapes = [(int(w.shape[0]), int(w.shape[1])) for w in matrices]
        positions = [
            per_module.get(layer, 0) / max(sum(p.numel() for p in layer.parameters(False)), 1)
            for layer in layers
        ]
        self._units = {
            "params": torch.ones(len(layers), dtype=torch.float64),
            "macs": torch.tensor(positions, dtype=torch.float64),
        }
        full = torch.tensor([m * n for m, n in self._shapes], dtype=torch.float64)
        self._fixed = {
            "params": params - float(full.sum()),
            "macs": macs - float((full * self._units["macs"]).sum()),
        }
        self._version = self.norm.version
        self.ranks = {n: min(s) for n, s in zip(names, self._shapes, strict=True)}
        self.ratio, self.stale = 1.0, True

    def _cost(self, kept: torch.Tensor) -> dict[str, float]:
        m = torch.tensor([s[0] for s in self._shapes], dtype=torch.float64)
        n = torch.tensor([s[1] for s in self._shapes], dtype=torch.float64)
        each = torch.minimum(m * n, kept * (m + n))
        return {k: self._fixed[k] + float((each * self._units[k]).sum()) for k in ("params", "macs")}

    def goal(self) -> float:
        """The target as a count."""
        self._model()
        return self.target.absolute(self.dense)

    def size(self) -> dict[str, float]:
        """The size with every layer split at its current rank where that saves."""
        self._model()
        kept = torch.tensor([self.ranks[n] for n in self.norm.layer_names()], dtype=torch.float64)
        return {k: v * self.ratio for k, v in self._cost(kept).items()}

    def select(self) -> None:
        """Choose the singular values that go: the fewest lowest-scored whose removal meets the target."""
        self._model()
        layers = self.norm.layer_names()
        values = [
            torch.linalg.svdvals(as_matrix(self.norm.weight(n).detach())).double().cpu() for n in layers
        ]
        strengths = [self.norm.layer_strength(n) for n in layers]
        scores = torch.cat([v / max(t, 1e-30) for v, t in zip(values, strengths, strict=True)])
        owner = torch.cat([torch.full((len(v),), i) for i, v in enumerate(values)])
        free = torch.ones(len(scores), dtype=torch.bool)
        start = 0
        for v, t in zip(values, strengths, strict=True):
            free[start] = False  # rank 1 stays
            if t == 0:
                free[start : start + len(v)] = False
            start += len(v)
        totals = torch.tensor([len(v) for v in values], dtype=torch.float64)

        def size(mask: torch.Tensor) -> float:
            gone = torch.zeros(len(values), dtype=torch.float64).index_add_(0, owner, mask.double())
            return self._cost(totals - gone)[self.target.measure] * self.ratio

        try:
            chosen = fewest_to_budget(scores, free, size, self.goal())
        except BudgetError as err:
            raise budget_error(self.target, err, self.dense, "rank 1 in every layer") from None
        gone = torch.zeros(len(values), dtype=torch.long).index_add_(0, owner, chosen.long())
        self.ranks = {n: len(v) - int(g) for n, v, g in zip(layers, values, gone.tolist(), strict=True)}
        self.boundary = float(scores[chosen].max()) if bool(chosen.any()) else 0.0
        self.stale = False

    @torch.no_grad()
    def _shrink(self, chosen_step: float, other_step: float) -> None:
        for name in self.norm.layer_names():
            weight = self.norm.weight(name)
            tau, rank = self.norm.layer_strength(name), self.ranks[name]
            k = min(as_matrix(weight).shape)
            thresholds = torch.full((k,), other_step * tau, dtype=torch.float64)
            thresholds[rank:] = chosen_step * tau
            shrunk, s = shrink_spectrum(weight, thresholds)
            weight.copy_(shrunk)
            self.norm.ranks[name] = int((s > 0).sum())

    def shrink_(self, steps_left: int, total_steps: int | None = None) -> float:
        """Shrink the chosen singular values by the closing step, the others by the background step
        (see ``GroupBudget.shrink_``); returns the closing step."""
        self._model()
        if self.stale:
            self.select()
        unit = closing_unit(self.boundary, steps_left)
        background = closing_unit(self.boundary, total_steps) if total_steps else 0.0
        if unit > 0:
            self._shrink(max(unit, background), background)
        return unit

    def hold_(self) -> None:
        """Every layer truncated to its chosen rank."""
        self._model()
        if self.stale:
            self.select()
        self._shrink(float("inf"), 0.0)

    def calibrate(self, exact: dict[str, int]) -> None:
        """Nothing to match: the rank model counts the split layers exactly."""
