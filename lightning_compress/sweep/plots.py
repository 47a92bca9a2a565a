"""The size / accuracy figure of a sweep, as a PNG and as a self-contained interactive HTML page.

Both show the same thing: every completed trial coloured by method on a log size axis, the Pareto front
as a step line, the dense model's size and the accuracy floor. The HTML page embeds plotly.js (it opens
offline) and shows each trial's parameters and checkpoint on hover.
"""

from __future__ import annotations

import html as html_lib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lightning_compress.sweep.compare import UNION, MethodsReport, compare_methods, format_methods

__all__ = ["PlotData", "plot_data", "write_html", "write_png"]

_COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#d62728",
    "#7f7f7f",
    "#000080",
    "#808000",
]


@dataclass
class PlotData:
    """What the figure shows: points per method, the front, the references."""

    title: str
    size_name: str
    by_method: dict[str, list[FrozenTrial]]
    front: list[FrozenTrial]
    dense: float | None
    floor: float | None
    fronts: dict[str, list[FrozenTrial]] | None = None  # each method's own front (when there are several)
    report: MethodsReport | None = None  # their hypervolumes, the front's owners, MACs against latency


def plot_data(study: optuna.Study, size_name: str, floor: float | None = None) -> PlotData:
    """The completed trials of ``study`` grouped by method, and its (feasible) front, smallest first."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    by_method: dict[str, list[FrozenTrial]] = {}
    for t in done:
        by_method.setdefault(str(t.user_attrs.get("method") or "trials"), []).append(t)
    dense = next(
        (t.user_attrs[f"dense_{size_name}"] for t in done if t.user_attrs.get(f"dense_{size_name}")), None
    )
    front = sorted(study.best_trials, key=lambda t: t.values[0])
    title = f"{study.study_name}: {len(done)} trials, {len(front)} on the front"
    report = compare_methods(study, size_name) if len(by_method) > 1 else None
    fronts = {m: f for m, f in report.fronts.items() if m != UNION} if report is not None else None
    return PlotData(title, size_name, by_method, front, dense, floor, fronts, report)


def write_png(data: PlotData, path: Path) -> Path:
    """The figure as a PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if data.fronts:
        fig, (ax, side) = plt.subplots(1, 2, figsize=(13, 4.8), dpi=120, sharey=True)
        _method_fronts(side, data)
    else:
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for color, (method, trials) in zip(_COLORS * 4, data.by_method.items(), strict=False):
        ax.scatter(
            [t.values[0] for t in trials],
            [t.values[1] for t in trials],
            c=color,
            s=25,
            alpha=0.6,
            label=method,
        )
    xs, ys = [t.values[0] for t in data.front], [t.values[1] for t in data.front]
    ax.step(xs, ys, where="post", c="black", lw=1.2, alpha=0.7)
    ax.scatter(xs, ys, facecolors="none", edgecolors="black", s=70, label="Pareto front")
    for t in data.front:
        ax.annotate(
            str(t.number), (t.values[0], t.values[1]), textcoords="offset points", xytext=(4, 4), fontsize=8
        )
    if data.dense:
        ax.axvline(data.dense, color="0.3", ls="--", lw=1, label=f"dense ({data.dense:,} {data.size_name})")
    if data.floor is not None:
        ax.axhline(data.floor, color="tab:red", ls=":", lw=1, label=f"accuracy floor {data.floor:g}")
    ax.set_xscale("log")
    ax.set_xlabel(_axis_label(data.size_name))
    ax.set_ylabel("validation accuracy")
    ax.set_title(data.title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _axis_label(size_name: str) -> str:
    if size_name == "latency":
        return "measured latency of the exported model, ms a batch (log scale)"
    return f"{size_name} after physical removal (log scale)"


def _method_fronts(ax: Any, data: PlotData) -> None:
    """Each method's own front as a step line in its colour (the union's owners are on the left)."""
    for color, method in zip(_COLORS * 4, data.by_method, strict=False):
        front = (data.fronts or {}).get(method) or []
        xs, ys = [t.values[0] for t in front], [t.values[1] for t in front]
        hv = data.report.hypervolume.get(method, float("nan")) if data.report else float("nan")
        ax.step(xs, ys, where="post", c=color, lw=1.5, label=f"{method}: hypervolume {hv:.3f}")
        ax.scatter(xs, ys, c=color, s=18)
    if data.dense:
        ax.axvline(data.dense, color="0.3", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(_axis_label(data.size_name))
    union = data.report.hypervolume.get(UNION, float("nan")) if data.report else float("nan")
    ax.set_title(f"each method's own front (the union's hypervolume: {union:.3f})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)


def _hover(t: FrozenTrial, size_name: str) -> str:
    attrs = t.user_attrs
    lines = [
        f"<b>trial {t.number}</b> ({html_lib.escape(str(attrs.get('method') or '-'))})",
        f"{size_name}: {t.values[0]:,.4g}" if size_name == "latency" else f"{size_name}: {t.values[0]:,.0f}",
        f"params {attrs.get('params', 0):,}, MACs {attrs.get('macs', 0):,}, latency {attrs.get('latency', float('nan')):.3f} ms",
        f"val acc: {t.values[1]:.4f}, test acc: {attrs.get('test_acc', float('nan')):.4f}",
    ]
    lines += [
        f"{html_lib.escape(k.split('/')[-1])}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
        for k, v in t.params.items()
    ]
    if attrs.get("widths"):
        lines.append("widths: " + ", ".join(str(w) for w in attrs["widths"].values()))
    lines.append(f"checkpoint: {html_lib.escape(str(attrs.get('checkpoint')))}")
    return "<br>".join(lines)


def write_html(data: PlotData, path: Path) -> Path:
    """The figure as one HTML file with plotly.js embedded (opens offline)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for color, (method, trials) in zip(_COLORS * 4, data.by_method.items(), strict=False):
        fig.add_trace(
            go.Scatter(
                x=[t.values[0] for t in trials],
                y=[t.values[1] for t in trials],
                mode="markers",
                name=method,
                marker={"color": color, "size": 9, "opacity": 0.7},
                hovertext=[_hover(t, data.size_name) for t in trials],
                hoverinfo="text",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[t.values[0] for t in data.front],
            y=[t.values[1] for t in data.front],
            mode="lines+markers",
            line={"shape": "hv", "color": "black", "width": 1.5},
            marker={"size": 14, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 1.5}},
            name="Pareto front",
            hovertext=[_hover(t, data.size_name) for t in data.front],
            hoverinfo="text",
        )
    )
    if data.dense:
        fig.add_vline(
            x=data.dense, line_dash="dash", line_color="gray", annotation_text=f"dense ({data.dense:,})"
        )
    if data.floor is not None:
        fig.add_hline(
            y=data.floor, line_dash="dot", line_color="red", annotation_text=f"accuracy floor {data.floor:g}"
        )
    fig.update_layout(
        title=data.title,
        xaxis={"type": "log", "title": _axis_label(data.size_name)},
        yaxis={"title": "validation accuracy"},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    parts = [fig.to_html(full_html=False, include_plotlyjs=True, div_id="pareto")]
    if data.fronts:
        parts.append(_fronts_html(data).to_html(full_html=False, include_plotlyjs=False, div_id="fronts"))
    if data.report is not None:  # the terminal's comparison: hypervolumes, owners, MACs vs latency
        parts.append(f"<pre id='methods'>{html_lib.escape(format_methods(data.report))}</pre>")
    curves = _curves(data)
    if curves is not None:
        parts.append(curves.to_html(full_html=False, include_plotlyjs=False, div_id="curves"))
    title = html_lib.escape(data.title)
    path.write_text(
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n",
        encoding="utf-8",
    )
    return path


def _curves(data: PlotData) -> Any:
    """Validation accuracy per epoch of every trial (its intermediate values), coloured by method."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for color, (method, trials) in zip(_COLORS * 4, data.by_method.items(), strict=False):
        for i, t in enumerate(sorted(trials, key=lambda t: t.number)):
            steps = sorted(t.intermediate_values)
            if not steps:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[s + 1 for s in steps],
                    y=[t.intermediate_values[s] for s in steps],
                    mode="lines+markers",
                    line={"color": color, "width": 1},
                    name=method,
                    legendgroup=method,
                    showlegend=i == 0,
                    hovertext=f"trial {t.number}",
                )
            )
    if not fig.data:
        return None
    fig.update_layout(
        title="validation accuracy per epoch",
        xaxis={"title": "epoch", "dtick": 1},
        yaxis={"title": "validation accuracy"},
        template="plotly_white",
    )
    return fig


def _fronts_html(data: PlotData) -> Any:
    """Each method's own front, one step line per method."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for color, method in zip(_COLORS * 4, data.by_method, strict=False):
        front = (data.fronts or {}).get(method) or []
        fig.add_trace(
            go.Scatter(
                x=[t.values[0] for t in front],
                y=[t.values[1] for t in front],
                mode="lines+markers",
                line={"shape": "hv", "color": color},
                name=f"{method} ({len(front)})",
                hovertext=[_hover(t, data.size_name) for t in front],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title="each method's own front",
        xaxis={"type": "log", "title": _axis_label(data.size_name)},
        yaxis={"title": "validation accuracy"},
        template="plotly_white",
    )
    return fig
