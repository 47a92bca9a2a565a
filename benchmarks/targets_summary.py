"""RESULTS.md's section on size targets: the size each run reached against the one it asked for, and its
accuracy against the best strength-swept model of that size, seed by seed (no figure typed by hand).

Swept references: LeNet-300-100, the ``group_lasso`` (SGD) and ``group_lasso_adamw`` rows of
``group_sparsity_vs_peers.jsonl``; the small ResNet, the per-target ``keep_ratio`` recipes
(``ours_macs_ft_keep*``) of ``results/superseded/group_sparsity_vs_peers_2026-12-02.jsonl`` (the recorded
table, measured before the epoch-seeded data order); torchvision resnet18, ``group_lasso`` and the
Torch-Pruning rows of ``zoo_vs_torch_pruning.jsonl``. "Seed noise" is the larger of the two standard
deviations over seeds.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
HEADLINE = {  # each model's default recipe, per optimizer, with a reference of the same optimizer
    "target_group_lasso",
    "target_group_lasso_adamw",
    "target_group_lasso_macs",
    "target_params_cost",
    "target_params_cost_adamw",
}
SGD_SWEPT = ("trimmed `group_lasso`, SGD", lambda r: r["method"] == "group_lasso")
ADAMW_SWEPT = ("trimmed `group_lasso`, AdamW", lambda r: r["method"] == "group_lasso_adamw")


def _rows(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    )


def _best_per_seed(runs: list[dict], key: str, level: float) -> list[float]:
    """Each seed's best test accuracy among ``runs`` that removed at least ``1 - level`` of ``key``."""
    best: dict[int, float] = {}
    for r in runs:
        if r[key] >= 1 - level - 1e-9:
            best[r["seed"]] = max(best.get(r["seed"], 0.0), r["test_acc"])
    return list(best.values())


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _setting(
    title: str,
    runs: list[dict],
    key: str,
    methods: dict[str, str],
    swept: dict[str, tuple[str, Callable[[dict], bool]]],
) -> tuple[list[str], list[bool], list[bool]]:
    """The table of one model: per target method and level, size reached and accuracy against the swept."""
    what = "params" if key == "removed_params" else "MACs"
    lines = [
        f"**{title}** (size kept: share of the dense {what}; accuracy: test, mean ± sd over seeds)",
        "",
        "| method | target | seeds | size kept (each seed) | worst miss (points) | accuracy | swept best of that size | difference (seed noise) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    dense = {
        name: [100 * r["test_acc"] for r in runs if r["method"] == name] for name in ("dense", "dense_adamw")
    }
    said = [f"{name} {statistics.mean(v):.2f} ± {_sd(v):.2f}" for name, v in dense.items() if v]
    if said:
        lines[1:1] = ["", f"Dense (test, over seeds): {', '.join(said)}."]
    within, level_with = [], []
    for method, label in methods.items():
        mine = [r for r in runs if r["method"] == method]
        for level in sorted({r["level"] for r in mine}, reverse=True):
            cell = [r for r in mine if r["level"] == level]
            kept = [1 - r[key] for r in sorted(cell, key=lambda r: r["seed"])]
            miss = max(abs(k - level) for k in kept) * 100
            within.append(miss <= 2.0)
            headline = method in HEADLINE
            acc = [100 * r["test_acc"] for r in cell]
            ref_label, ref_filter = swept[method]
            ref = [100 * a for a in _best_per_seed([r for r in runs if ref_filter(r)], key, level)]
            if ref:
                diff, noise = statistics.mean(acc) - statistics.mean(ref), max(_sd(acc), _sd(ref))
                if headline:
                    level_with.append(diff >= -noise)
                against = f"{statistics.mean(ref):.2f} ± {_sd(ref):.2f} ({ref_label}, {len(ref)})"
                verdict = f"{diff:+.2f} ({noise:.2f})"
            else:
                against, verdict = f"none ({ref_label})", "-"
            lines.append(
                f"| {label} | {level:g} | {len(cell)} | {', '.join(f'{k:.3f}' for k in kept)} | {miss:.2f} "
                f"| {statistics.mean(acc):.2f} ± {_sd(acc):.2f} | {against} | {verdict} |"
            )
    return [*lines, ""], within, level_with


def strength_table(runs: list[dict]) -> list[str]:
    """What a plain strength gives on LeNet-300-100 with SGD and with AdamW: the share of parameters kept."""
    lines = [
        "**A strength instead, LeNet-300-100** (share of the dense parameters kept, each seed): SGD lr 0.05,",
        "AdamW lr 1e-3, both cosine over 30 epochs.",
        "",
        "| optimizer | strength | kept (each seed) |",
        "|---|---|---|",
    ]
    for method, label in (("group_lasso", "SGD"), ("group_lasso_adamw", "AdamW")):
        for level in sorted({r["level"] for r in runs if r["method"] == method}):
            kept = [1 - r["removed_params"] for r in runs if r["method"] == method and r["level"] == level]
            lines.append(f"| {label} | {level:g} | {', '.join(f'{k:.3f}' for k in kept)} |")
    return [*lines, ""]


def size_target_section() -> list[str]:
    """The size targets section: LeNet-300-100, the small ResNet and torchvision resnet18."""
    lenet = [
        r
        for r in _rows(RESULTS / "group_sparsity_vs_peers.jsonl")
        if r.get("model", "lenet300_100") == "lenet300_100"
        and r.get("normalize", "global") == "global"
        and r["epochs"] == 30
    ]
    small = _rows(RESULTS / "size_targets_resnet_small.jsonl")
    small_swept = [
        r
        for r in _rows(RESULTS / "superseded" / "group_sparsity_vs_peers_2026-12-02.jsonl")
        if r.get("model") == "resnet_small" and r["method"].startswith("ours_macs_ft_keep")
    ]
    zoo = [r for r in _rows(RESULTS / "zoo_vs_torch_pruning.jsonl") if r["model"] == "resnet18"]
    resnet18 = _rows(RESULTS / "size_targets_resnet18.jsonl")
    if not any(r["method"].startswith("target") for r in lenet) and not small and not resnet18:
        return []
    tp = ("Torch-Pruning, best of both pruners", lambda r: r["method"].startswith("tp_"))
    settings = [
        (
            "LeNet-300-100 by parameters, 30 epochs (`group_sparsity_vs_peers.py`)",
            lenet,
            "removed_params",
            {"target_group_lasso": "SGD", "target_group_lasso_adamw": "AdamW"},
            {
                "target_group_lasso": ("`group_lasso`, SGD", lambda r: r["method"] == "group_lasso"),
                "target_group_lasso_adamw": (
                    "`group_lasso_adamw`",
                    lambda r: r["method"] == "group_lasso_adamw",
                ),
            },
        ),
        (
            "Small ResNet (BatchNorm) by MACs, 6 epochs (`group_sparsity_vs_peers.py --model resnet_small`)",
            small + small_swept,
            "removed_macs",
            {"target_group_lasso_macs": "SGD", "target_group_lasso_macs_adamw": "AdamW"},
            {
                m: (
                    "recorded `keep_ratio` per target, SGD",
                    lambda r: r["method"].startswith("ours_macs_ft_keep"),
                )
                for m in ("target_group_lasso_macs", "target_group_lasso_macs_adamw")
            },
        ),
        (
            "torchvision resnet18 by MACs, 6 epochs on 8,000 images (`zoo_vs_torch_pruning.py`)",
            resnet18 + zoo,
            "removed_macs",
            {
                "target_params_cost": "SGD",
                "target_params_cost_floor0.95": "SGD, floors 0.95 sqrt(target)",
                "target_params_cost_deadline0.33": "SGD, deadline at a third",
                "target_params_cost_adamw": "AdamW",
                "target": 'SGD, `cost="macs"`',
                "target_adamw": 'AdamW, `cost="macs"`',
            },
            {
                **{
                    m: SGD_SWEPT
                    for m in (
                        "target",
                        "target_params_cost",
                        "target_params_cost_floor0.95",
                        "target_params_cost_deadline0.33",
                    )
                },
                **{m: ADAMW_SWEPT for m in ("target_adamw", "target_params_cost_adamw")},
            },
        ),
    ]
    lines = [
        "## Size targets (`GroupSparsity(target_params=...)` / `target_macs=`)",
        "",
        *__doc__.split("\n\n")[0].split("\n"),
        "",
    ]
    within: list[bool] = []
    level_with: list[bool] = []
    for title, runs, key, methods, swept in settings:
        if not any(r["method"] in methods for r in runs):
            continue
        table, w, lw = _setting(title, runs, key, methods, swept)
        lines += table
        within += w
        level_with += lw
    lines += strength_table(lenet)
    if resnet18:
        tp_lines, _, _ = _setting(
            "torchvision resnet18 against Torch-Pruning at the same size (the Aim at 10%)",
            resnet18 + zoo,
            "removed_macs",
            {"target_params_cost": "SGD", "target": 'SGD, `cost="macs"`'},
            {"target": tp, "target_params_cost": tp},
        )
        lines += tp_lines
    lines += [
        f"Every run within 2 points of its target: {sum(within)} of {len(within)} cells. Accuracy not below "
        f"the swept model by more than seed noise, for the default recipes (SGD and AdamW rows with a "
        f"reference of their optimizer): {sum(level_with)} of {len(level_with)} cells.",
        "",
    ]
    return lines
