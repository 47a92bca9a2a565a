"""The Pareto front of a sweep: a terminal table, its hypervolume, a PNG and an interactive HTML plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lightning_compress.sweep.plots import plot_data, write_html, write_png

__all__ = ["format_table", "hypervolume_2d", "pareto_rows", "trial_rows", "write_plots"]


def hypervolume_2d(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by ``points`` (both coordinates minimized) up to ``reference``.

    Example:
        >>> hypervolume_2d([(0.2, 0.5), (0.5, 0.2)], (1.0, 1.0))
        0.55
    """
    inside = sorted((x, y) for x, y in points if x < reference[0] and y < reference[1])
    # sweep left to right: each point that improves the best y adds a rectangle up to the reference
    area, prev_y = 0.0, reference[1]
    for x, y in inside:
        if y < prev_y:
            area += (reference[0] - x) * (prev_y - y)
            prev_y = y
    return round(area, 12)


def _row(trial: FrozenTrial) -> dict[str, Any]:
    attrs = trial.user_attrs
    return {
        "trial": trial.number,
        "method": attrs.get("method"),
        "params": attrs.get("params"),
        "macs": attrs.get("macs"),
        "latency": attrs.get("latency"),
        "latency_spread": (attrs["latency_q75"] - attrs["latency_q25"]) if "latency_q75" in attrs else None,
        "val_acc": trial.values[1] if trial.values else None,
        "test_acc": attrs.get("test_acc"),
        "widths": attrs.get("widths"),
        "checkpoint": attrs.get("checkpoint"),
        "dense_params": attrs.get("dense_params"),
        "dense_macs": attrs.get("dense_macs"),
        "dense_latency": attrs.get("dense_latency"),
        "settings": {k: v for k, v in trial.params.items()},
        "size_of": attrs.get("size_of"),
    }


def pareto_rows(study: optuna.Study) -> tuple[list[dict[str, Any]], float]:
    """The Pareto-optimal (feasible) trials, smallest first, and the front's hypervolume.

    The hypervolume is taken on (size / dense size, 1 - val_acc), reference (1, 1): the share of the
    unit square that the front dominates (1.0 would be a zero-size model with perfect accuracy).
    """
    front = sorted(study.best_trials, key=lambda t: t.values[0])
    rows = [_row(t) for t in front]
    size_key = f"dense_{(study.metric_names or ['params'])[0]}"
    points = []
    for t, r in zip(front, rows, strict=True):
        dense = r.get(size_key) or t.values[0]
        points.append((t.values[0] / dense, 1.0 - t.values[1]))
    return rows, hypervolume_2d(points, (1.0, 1.0))


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Every completed trial as a row, with ``pareto``: whether it is on the (feasible) front."""
    front = {t.number for t in study.best_trials}
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [{**_row(t), "pareto": t.number in front} for t in done]


def format_table(rows: Sequence[dict[str, Any]], hypervolume: float, size_name: str = "params") -> str:
    """The Pareto table: size and its share of dense, accuracies, measured latency (ms a batch), widths;
    then each Pareto model's ``export`` command."""
    other = "macs" if size_name != "macs" else "params"
    head = (
        f"{'trial':>5}  {'method':<24}{size_name:>10}{'kept':>8}{other:>12}{'latency ms':>12}"
        f"{'val acc':>9}{'test acc':>10}  widths"
    )
    lines = [head, "-" * (len(head) + 12)]
    for r in rows:
        size = r.get(size_name) or 0
        dense = r.get(f"dense_{size_name}") or size or 1
        widths = ",".join(str(w) for w in (r.get("widths") or {}).values())
        if r.get("size_of") is not None:  # a size taken from a trained trial's model
            widths = f"a size of trial {r['size_of']}"
        latency = f"{r['latency']:.3f}" if r.get("latency") is not None else "-"
        shown = f"{size:>10.3f}" if isinstance(size, float) else f"{size:>10,}"
        lines.append(
            f"{r['trial']:>5}  {r['method'] or '-'!s:<24}{shown}{size / dense:>8.1%}"
            f"{(r.get(other) or 0):>12,}{latency:>12}{r['val_acc']:>9.4f}{(r['test_acc'] or 0):>10.4f}  {widths}"
        )
    lines.append(f"hypervolume (size/dense vs 1 - val acc, reference (1, 1)): {hypervolume:.4f}")
    if rows:
        lines.append("Pareto models, each one command from plain PyTorch:")
        lines += [
            f"  trial {r['trial']:>4}: lightning-compress export {r['checkpoint']} --out exports/trial-{r['trial']:04d}"
            for r in rows
        ]
    return "\n".join(lines)


def write_plots(
    study: optuna.Study, out_dir: Path, size_name: str = "params", floor: float | None = None
) -> tuple[Path, Path]:
    """``pareto.png`` and ``pareto.html`` (interactive, plotly.js embedded): every trial coloured by method
    on a log size axis, the front, the dense size and the accuracy ``floor``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = plot_data(study, size_name, floor)
    return write_png(data, out_dir / "pareto.png"), write_html(data, out_dir / "pareto.html")
