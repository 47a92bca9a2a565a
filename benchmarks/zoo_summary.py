"""RESULTS.md's sections on the models users bring: the zoo table and the comparison with Torch-Pruning."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = (0.5, 0.8)


def _rows(name: str) -> list[dict]:
    path = RESULTS / name
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    )


def zoo_section() -> list[str]:
    """The zoo table (benchmarks/zoo_table.py): every model, every feature, what was skipped and why."""
    rows = _rows("zoo_table.jsonl")
    if not rows:
        return []
    lines = [
        "## The models users bring (benchmarks/zoo_table.py)",
        "",
        "Built from their libraries' constructors (no weights), one process each, one thread. *groups*:",
        "`find_groups` time and the process's peak memory at its end; *removal*: half of every family's",
        "groups zeroed, then removed (largest output difference relative to the output's scale); *reload*:",
        "the state dict into a fresh model (history replayed); *export*: `torch.export`; *SVD* / *DALR*:",
        "`compress_low_rank(param_ratio=0.5)`, layers split and parameters after.",
        "",
        "| model | params | groups (s / MiB) | families | skipped | removal: params after (rel. diff) "
        "| reload | export | SVD: layers, params | DALR: layers, params |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "crash" in r:
            lines.append(f"| {r['model']} | crash: {r['crash'].splitlines()[-1][:120]} |||||||||")
            continue
        export = (
            f"{r['export_relative_difference']:.0e}"
            if "export_relative_difference" in r
            else r["export_error"]
        )
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['groups_seconds']} / {r['groups_peak_mib']} "
            f"| {r['families']} | {len(r['skipped'])} | {r['removal_params']:,} "
            f"({r['removal_relative_difference']:.0e}) | {r['reload_relative_difference']:.0e} | {export} "
            f"| {r['svd_layers_split']}, {r['svd_params']:,} | {r['dalr_layers_split']}, {r['dalr_params']:,} |"
        )
    lines += ["", "Families left out, each with its one warning (the first three of each model):", ""]
    for r in rows:
        for text in r.get("skipped", [])[:3]:
            lines.append(f"- {r['model']}: {text[:240]}")
        if len(r.get("skipped", [])) > 3:
            lines.append(f"- {r['model']}: ... {len(r['skipped']) - 3} more of the same kinds")
    return [*lines, ""]


def torchvision_section() -> list[str]:
    """Torchvision's whole list, the slower check (benchmarks/zoo_torchvision.py)."""
    rows = _rows("zoo_torchvision.jsonl")
    if not rows:
        return []
    exact = [r for r in rows if "crash" not in r and r["removal_relative_difference"] <= 1e-5]
    lines = [
        "### Torchvision's whole list (benchmarks/zoo_torchvision.py)",
        "",
        f"{len(exact)} of {len(rows)} models: half of every family zeroed and removed, outputs within 1e-5",
        "of their scale. Families left out are counted (each has its warning).",
        "",
        "| model | params | groups (s / MiB) | families | skipped | params after removal | rel. diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "crash" in r:
            lines.append(f"| {r['model']} | crash: {r['crash'][:160]} ||||||")
            continue
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['groups_seconds']} / {r['groups_peak_mib']} | {r['families']} "
            f"| {len(r['skipped'])} | {r['removal_params']:,} | {r['removal_relative_difference']:.0e} |"
        )
    return [*lines, ""]


def _cell(rows: list[dict]) -> str:
    accs = [r["test_acc"] * 100 for r in rows]
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    macs = statistics.mean(r["removed_macs"] for r in rows) * 100
    return f"{statistics.mean(accs):.2f} ± {sd:.2f} ({macs:.0f}% fewer MACs, n={len(rows)})"


def torch_pruning_section() -> list[str]:
    """Our group lasso against Torch-Pruning on torchvision resnet18 and a timm ViT (zoo_vs_torch_pruning.py)."""
    rows = _rows("zoo_vs_torch_pruning.jsonl")
    if not rows:
        return []
    first = rows[0]
    lines = [
        "## Users' models against Torch-Pruning (benchmarks/zoo_vs_torch_pruning.py)",
        "",
        f"Fashion-MNIST, the same {first['train_size']:,} training images for every run, {first['epochs']} epochs,",
        "test accuracy (%) on the whole test split, mean ± standard deviation over seeds. Each method at the level",
        "that first removes at least the column's share of MACs (ours: the trimmed group lasso's keep share;",
        "Torch-Pruning: its channel ratio).",
        "",
        "| model | method | level | >= 50% fewer MACs | >= 80% fewer MACs |",
        "|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str, float], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["method"], r["level"])].append(r)
    for model in dict.fromkeys(r["model"] for r in rows):
        dense = [r for r in rows if r["model"] == model and r["method"] == "dense"]
        if dense:
            lines.append(f"| {model} | dense | | {_cell(dense)} | |")
        for method in ("group_lasso", "tp_magnitude", "tp_groupnorm"):
            levels = sorted({lv for (m, me, lv) in groups if m == model and me == method})
            cells = []
            for target in TARGETS:
                fit = [
                    lv
                    for lv in levels
                    if all(r["removed_macs"] >= target for r in groups[(model, method, lv)])
                ]
                best = max(
                    fit,
                    key=lambda lv: statistics.mean(r["test_acc"] for r in groups[(model, method, lv)]),
                    default=None,
                )
                cells.append((best, _cell(groups[(model, method, best)]) if best is not None else "-"))
            shown = ", ".join(str(lv) for lv, _ in cells if lv is not None)
            lines.append(f"| {model} | {method} | {shown} | {cells[0][1]} | {cells[1][1]} |")
    return [*lines, ""]
