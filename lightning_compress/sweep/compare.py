"""Methods against each other in one study: each method's front and hypervolume, the union's, which method
owns which stretch of the union front, and whether MACs order the models as their measured latency does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["MethodsReport", "compare_methods", "format_methods", "front_of", "spearman"]

UNION = "union"


def _feasible(t: FrozenTrial) -> bool:
    return all(c <= 0 for c in t.system_attrs.get("constraints", []) or [])


def front_of(trials: Sequence[FrozenTrial], measure: str) -> list[FrozenTrial]:
    """The trials no other trial beats on both ``measure`` (a user attribute, minimized) and validation
    accuracy (the second objective, maximized), smallest first; infeasible or unmeasured trials left out.

    Example:
        >>> from optuna.trial import create_trial
        >>> ts = [create_trial(values=[s, a], user_attrs={"params": s}) for s, a in [(1., .5), (2., .9), (3., .8)]]
        >>> [t.values for t in front_of(ts, "params")]
        [[1.0, 0.5], [2.0, 0.9]]
    """
    pts = [t for t in trials if t.values and t.user_attrs.get(measure) is not None and _feasible(t)]
    pts.sort(key=lambda t: (t.user_attrs[measure], -t.values[1]))
    front, best = [], -1.0
    for t in pts:
        if t.values[1] > best:
            front.append(t)
            best = t.values[1]
    return front


def _hypervolume(front: Sequence[FrozenTrial], measure: str, dense: float) -> float:
    """Area that ``front`` dominates in (measure / dense, 1 - val acc) up to (1, 1)."""
    area, prev = 0.0, 1.0
    for t in front:
        x, y = t.user_attrs[measure] / dense, 1.0 - t.values[1]
        if x < 1.0 and y < prev:
            area += (1.0 - x) * (prev - y)
            prev = y
    return round(area, 6)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties).

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 40, 30])
        0.8
    """

    def ranks(v: Sequence[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        out = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = sum((a - mx) ** 2 for a in rx) ** 0.5
    sy = sum((b - my) ** 2 for b in ry) ** 0.5
    return round(cov / (sx * sy), 4) if sx and sy else float("nan")


@dataclass
class MethodsReport:
    """The comparison of methods on ``measure``: fronts and hypervolumes per method and for their union
    (``"union"``), the union front's stretches (method, first and last trial, size shares, accuracies),
    and MACs against latency (Spearman's rho over distinct architectures, and the front's pairs that
    the two order differently beyond the timing spread)."""

    measure: str
    dense: float
    fronts: dict[str, list[FrozenTrial]]
    hypervolume: dict[str, float]
    stretches: list[dict[str, Any]]
    rho: float | None
    disagreements: list[tuple[int, int]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "dense": self.dense,
            "hypervolume": self.hypervolume,
            "fronts": {m: [t.number for t in f] for m, f in self.fronts.items()},
            "stretches": self.stretches,
            "macs_latency_spearman": self.rho,
            "macs_latency_disagreements": self.disagreements,
        }


def _stretches(front: Sequence[FrozenTrial], measure: str, dense: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in front:
        method = str(t.user_attrs.get("method") or "-")
        share, acc = t.user_attrs[measure] / dense, t.values[1]
        if out and out[-1]["method"] == method:
            out[-1].update(last=t.number, to_share=share, to_acc=acc, models=out[-1]["models"] + 1)
        else:
            out.append(
                {"method": method, "first": t.number, "last": t.number, "from_share": share,
                 "to_share": share, "from_acc": acc, "to_acc": acc, "models": 1}
            )  # fmt: skip
    return out


def _disagreements(trials: Sequence[FrozenTrial]) -> list[tuple[int, int]]:
    """Pairs (a, b): a has fewer MACs than b, yet a's fastest quarter is slower than b's slowest."""
    timed = [t for t in trials if t.user_attrs.get("latency_q25") is not None and t.user_attrs.get("macs")]
    out = []
    for a in timed:
        for b in timed:
            fewer = a.user_attrs["macs"] < b.user_attrs["macs"]
            if fewer and a.user_attrs["latency_q25"] > b.user_attrs["latency_q75"]:
                out.append((a.number, b.number))
    return out


def compare_methods(study: optuna.Study, measure: str) -> MethodsReport:
    """Each method's front and hypervolume on ``measure`` (``params``, ``macs`` or ``latency``), the
    union's, its stretches, and MACs against measured latency."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    dense = next(
        (float(t.user_attrs[f"dense_{measure}"]) for t in done if t.user_attrs.get(f"dense_{measure}")), 0.0
    )
    by_method: dict[str, list[FrozenTrial]] = {}
    for t in done:
        by_method.setdefault(str(t.user_attrs.get("method") or "-"), []).append(t)
    fronts = {m: front_of(ts, measure) for m, ts in sorted(by_method.items())}
    fronts[UNION] = front_of(done, measure)
    hv = {m: _hypervolume(f, measure, dense) if dense else float("nan") for m, f in fronts.items()}
    archs: dict[str, FrozenTrial] = {}
    for t in done:
        if t.user_attrs.get("latency") is not None and t.user_attrs.get("macs"):
            archs.setdefault(str(t.user_attrs.get("architecture", t.number)), t)
    pairs = list(archs.values())
    rho = (
        spearman([t.user_attrs["macs"] for t in pairs], [t.user_attrs["latency"] for t in pairs])
        if len(pairs) > 2
        else None
    )
    stretches = _stretches(fronts[UNION], measure, dense) if dense else []
    return MethodsReport(measure, dense, fronts, hv, stretches, rho, _disagreements(fronts[UNION]))


def format_methods(report: MethodsReport) -> str:
    """The comparison as terminal text: hypervolume per method, the union front's owners, MACs vs latency."""
    m = report.measure
    lines = [f"hypervolume by method ({m} / dense vs 1 - val acc, reference (1, 1)):"]
    for method, hv in sorted(report.hypervolume.items(), key=lambda kv: (kv[0] == UNION, -kv[1])):
        lines.append(f"  {method:<28}{hv:>8.4f}  ({len(report.fronts[method])} models on its front)")
    lines.append(f"who owns the union front (by {m}):")
    for s in report.stretches:
        trials = (
            f"trial {s['first']}" if s["models"] == 1 else f"trials {s['first']}..{s['last']} ({s['models']})"
        )
        lines.append(
            f"  {s['from_share']:>7.1%} to {s['to_share']:>7.1%} of dense  val acc {s['from_acc']:.4f} to "
            f"{s['to_acc']:.4f}  {s['method']}: {trials}"
        )
    if report.rho is not None:
        lines.append(
            f"MACs against measured latency: Spearman rho {report.rho:.3f} over distinct architectures"
        )
        for a, b in report.disagreements[:10]:
            lines.append(
                f"  trial {a} has fewer MACs than trial {b} but runs slower (beyond the timing spread)"
            )
        if len(report.disagreements) > 10:
            lines.append(f"  ... {len(report.disagreements) - 10} more pairs")
    return "\n".join(lines)
