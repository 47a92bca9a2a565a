"""The sweep's HTML report renders offline in headless Chromium: both figures, every method, the front."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from lightning_compress.sweep.plots import plot_data, write_html, write_png

_CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")


def _study() -> optuna.Study:
    study = optuna.create_study(directions=["minimize", "maximize"], study_name="render")
    dists = {
        "method": CategoricalDistribution(["group_lasso", "low_rank"]),
        "strength": FloatDistribution(1e-5, 1e-2, log=True),
    }
    points = [
        ("group_lasso", 20_000, 0.84),
        ("group_lasso", 60_000, 0.87),
        ("group_lasso", 120_000, 0.86),
        ("low_rank", 30_000, 0.85),
        ("low_rank", 90_000, 0.875),
    ]
    for i, (method, size, acc) in enumerate(points):
        study.add_trial(
            optuna.trial.create_trial(
                params={"method": method, "strength": 10.0 ** -(2 + i / 2)},
                distributions=dists,
                values=[size, acc],
                user_attrs={
                    "method": method,
                    "checkpoint": f"/runs/trial{i}.ckpt",
                    "dense_params": 266_610,
                    "test_acc": acc - 0.01,
                    "widths": {"model.1": 300 - 10 * i, "model.3": 100 - i},
                },
                intermediate_values={0: acc - 0.05, 1: acc},
            )
        )
    return study


def _dom(html: Path) -> str:
    assert _CHROMIUM is not None
    proc = subprocess.run(
        [
            _CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing may come from the network
            "--virtual-time-budget=10000",
            "--dump-dom",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_png_is_written(tmp_path: Path) -> None:
    data = plot_data(_study(), "params", floor=0.85)
    assert write_png(data, tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(_CHROMIUM is None, reason="no headless Chromium (make chromium installs it)")
def test_html_report_renders_offline(tmp_path: Path) -> None:
    study = _study()
    data = plot_data(study, "params", floor=0.85)
    assert [t.number for t in data.front] == [0, 3, 1, 4]
    html = write_html(data, tmp_path / "pareto.html")
    dom = _dom(html)  # with every host unresolvable: plotly.js must be embedded for anything to draw
    # plotly draws each figure into an svg.main-svg pair: the front figure and the learning curves
    assert len(re.findall(r'<svg class="main-svg"', dom)) >= 4
    assert len(re.findall(r'<path class="point"', dom)) >= 5 + 4  # five trials, four ringed on the front
    legend = set(re.findall(r'class="legendtext"[^>]*>([^<]+)<', dom))
    assert {"group_lasso", "low_rank", "Pareto front"} <= legend
    assert "accuracy floor 0.85" in dom and "dense (266,610)" in dom
    assert "log scale" in dom and "validation accuracy per epoch" in dom
    # a log size axis: plotly labels the decade (100k) and the digits between (2 ... 9), not 20k, 40k, ...
    ticks = re.findall(r'class="xtick"[^>]*>.*?<text[^>]*>([^<]+)<', dom)
    assert "100k" in ticks and {"2", "5"} <= set(ticks) and "40k" not in ticks, ticks
