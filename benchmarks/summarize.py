"""Write benchmarks/RESULTS.md from the raw results in benchmarks/results/ (no figure is typed by hand).

Front comparison rule (conservative, no interpolation): a method's accuracy at "L fewer parameters" is its
best test accuracy among runs that removed at least L of the dense parameters; per seed, then the mean.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

from flexible_rank import flexible_section
from methods_front import front_section as methods_front_section
from tables import LEVELS, TABLES, Row, Table
from targets_summary import size_target_section
from zoo_summary import torch_pruning_section, torchvision_section, zoo_section

RESULTS = Path(__file__).resolve().parent / "results"


def _load_jsonl(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def _front_at(rows: list[dict], level: float, key: str) -> float | None:
    ok = [r["test_acc"] for r in rows if r[key] >= level]
    return max(ok) if ok else None


def front_cell(rows: list[dict], level: float, key: str) -> tuple[float, int] | None:
    """Mean over seeds of each seed's best accuracy at >= level removed, and the number of seeds with one."""
    seeds = defaultdict(list)
    for r in rows:
        seeds[r["seed"]].append(r)
    vals = [v for v in (_front_at(rs, level, key) for rs in seeds.values()) if v is not None]
    return (statistics.mean(vals), len(vals)) if vals else None


def _table_row(label: str, rows: list[dict], key: str) -> str:
    """``| label | seeds | cell per level |`` for the runs in ``rows``."""
    cells = []
    for level in LEVELS:
        cell = front_cell(rows, level, key)
        cells.append(f"{cell[0]:.2%} ({cell[1]})" if cell else "-")
    return f"| {label} | {len({r['seed'] for r in rows})} | " + " | ".join(cells) + " |"


def _mine(table: Table, rows: list[dict], row: Row) -> list[dict]:
    return [r for r in table.runs(rows) if r["method"] == row.method and r["level"] in row.levels]


def front_table(table: Table, rows: list[dict], *, seeds_column: bool = True) -> list[str]:
    """The table's rows (one per method) against the size columns; cells as :func:`front_cell`."""
    what = "params" if table.key == "removed_params" else "MACs"
    head = "| method | seeds | " if seeds_column else "| method | "
    out = [head + " | ".join(f">= {int(level * 100)}% fewer {what}" for level in LEVELS) + " |"]
    out.append("|---|" + ("---|" if seeds_column else "") + "---|" * len(LEVELS))
    for row in table.rows:
        line = _table_row(row.label, _mine(table, rows, row), table.key)
        if not seeds_column:
            line = re.sub(r" \(\d+\)", "", line)
            line = "|".join(p for i, p in enumerate(line.split("|")) if i != 2)
        out.append(line)
    return out


def front_section(table: Table, rows: list[dict]) -> list[str]:
    """A table's section of RESULTS.md: title, plot, dense accuracy, the front table, what each row ran."""
    runs = table.runs(rows)
    if not runs:
        return []
    what = "params" if table.key == "removed_params" else "MACs"
    dense = [r["test_acc"] for r in runs if r["method"] == "dense"]
    out = [
        f"### {table.model}, Fashion-MNIST, {table.epochs}-epoch budget, `{table.normalize}` normalization, by {what}",
        "",
    ]
    plot = front_plot(table, rows) if table.plot else None
    if plot:
        out += [f"![front]({plot})", ""]
    if dense:
        out += [f"Dense: {statistics.mean(dense):.2%} test accuracy (mean of {len(dense)} seeds).", ""]
    out += front_table(table, rows)
    out += [
        "",
        "Cells: mean over seeds of each seed's best test accuracy among runs at least that much smaller",
        "(number of seeds with one). Each row is one recipe or peer at the levels below, every seed:",
        "",
    ]
    for row in table.rows:
        out.append(f"- {row.label}: `{row.method}` at {', '.join(f'{v:g}' for v in row.levels)}")
    return [*out, ""]


def readme_table(table: Table, rows: list[dict]) -> str:
    """The README's table: the front of ``table`` with the dense accuracy in its caption, no seed counts."""
    runs = table.runs(rows)
    dense = statistics.mean(r["test_acc"] for r in runs if r["method"] == "dense")
    lines = front_table(table, rows, seeds_column=False)
    cells = [line.split("|")[2:-1] for line in lines[2:]]  # bold: the best cell of each column
    for col in range(len(LEVELS)):
        values = [float(c[col].strip().rstrip("%")) if c[col].strip() != "-" else -1.0 for c in cells]
        top = max(values)
        for i, v in enumerate(values):
            if v == top and v >= 0:
                cells[i][col] = f" **{cells[i][col].strip()}** "
    body = ["|" + lines[2 + i].split("|")[1] + "|" + "|".join(c) + "|" for i, c in enumerate(cells)]
    caption = (
        f"{table.model.replace('lenet300_100', 'LeNet-300-100')} on Fashion-MNIST, {table.epochs} epochs for "
        f"every method, {len(table.seeds)} seeds; each cell is the mean over seeds of the best test accuracy "
        f"among models at least that much smaller (dense: {dense:.2%}), by "
        "`benchmarks/group_sparsity_vs_peers.py`; `benchmarks/reproduce.py` re-runs a cell of every row."
    )
    return "\n".join([caption, "", lines[0], lines[1], *body])


def write_readme_table(table: Table, rows: list[dict]) -> None:
    """Replace the README's results table (between its two markers) with ``table``'s, from the runs."""
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text()
    start, end = "<!-- results table: benchmarks/summarize.py -->", "<!-- end of results table -->"
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    readme.write_text(f"{before}{start}\n{readme_table(table, rows)}\n{end}{after}")


COLORS = ("tab:red", "tab:orange", "tab:gray", "tab:green", "tab:blue", "tab:purple", "tab:brown")


def _front_line(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    fronts = [(100 * level, front_cell(rows, level, key)) for level in LEVELS]
    return (
        [x for x, cell in fronts if cell is not None],
        [100 * cell[0] for _, cell in fronts if cell is not None],
    )


def front_plot(table: Table, rows: list[dict]) -> str | None:
    """Accuracy vs share removed: a marker per run, a line through each row's per-seed-mean front."""
    runs = table.runs(rows)
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    what = "params" if table.key == "removed_params" else "MACs"
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    dense = [100 * r["test_acc"] for r in runs if r["method"] == "dense"]
    if dense:
        ax.axhline(statistics.mean(dense), color="black", lw=1, ls="--", label="dense (mean)")
    top = max([100 * r["test_acc"] for r in runs] + dense)
    floor = (statistics.mean(dense) if dense else top) - 6.0  # a collapsed run would flatten the others
    for i, row in enumerate(table.rows):
        mine, color = _mine(table, rows, row), COLORS[i % len(COLORS)]
        xs, ys = [100 * r[table.key] for r in mine], [100 * r["test_acc"] for r in mine]
        ax.plot(xs, [max(y, floor) for y in ys], "o", ms=3, color=color, alpha=0.5)
        low = [(x, y) for x, y in zip(xs, ys, strict=True) if y < floor]
        if low:  # off the scale: a triangle on the axis, its accuracy beside it
            ax.plot([x for x, _ in low], [floor] * len(low), "v", ms=7, color=color)
            for x, y in low:
                ax.annotate(f"{y:.0f}%", (x, floor), textcoords="offset points", xytext=(4, 4), fontsize=7)
        fx, fy = _front_line(mine, table.key)
        ax.plot(
            fx, [max(y, floor) for y in fy], "-o", color=color, lw=2.5 if i < 2 else 1.5, label=row.method
        )
    ax.set_ylim(floor - 0.3, top + 0.5)
    ax.set_xlabel(f"fewer {what} (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{table.model}, Fashion-MNIST, {table.normalize} normalization")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    name = f"front_{table.model}_{table.normalize}_{what.lower()}.png"
    fig.tight_layout()
    fig.savefig(RESULTS.parent / name, dpi=110)
    plt.close(fig)
    return name


def json_section(name: str, title: str) -> list[str]:
    path = RESULTS / name
    if not path.exists():
        return []
    return [f"### {title}", "", "```json", path.read_text().strip(), "```", ""]


def unchanged_section(rows: list[dict]) -> list[str]:
    """The same recipe and seeds run on the code before and after a refactoring, side by side."""
    if not rows:
        return []
    lines = [
        "",
        "### Behaviour unchanged by refactoring (benchmarks/results/unchanged_behaviour.jsonl)",
        "",
        "The same job, seeds and budget run on the code before and after a change that must not move",
        "results; identical figures mean identical training. The epoch-seeded data order (added so that a",
        "resumed run is exact) shuffles differently from PyTorch's RandomSampler: only its mean compares.",
        "",
        "| code | method | level | seed | fewer params | test acc | widths | measured |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['code']} | {r['method']} | {r['level']:g} | {r['seed']} | {r['removed_params']:.1%} "
            f"| {r['test_acc']:.2%} | {r['widths']} | {r['measured']} |"
        )
    for code in dict.fromkeys(r["code"] for r in rows):
        accs = [r["test_acc"] for r in rows if r["code"] == code]
        lines.append(f"\nMean test accuracy, {code}: {statistics.mean(accs):.2%} ({len(accs)} seeds).")
    prox = RESULTS / "unchanged_behaviour_prox.json"
    if prox.exists():
        lines += [
            "",
            "Prox overhead of the same code before and after (`benchmarks/prox_overhead.py --pairs 12`,",
            "LeNet-300-100, a prox after every step), runs alternating before / after on one day:",
            "",
            "| code | ratio of median epochs | median pair ratio | in-training call (us) | in-training ratio "
            "| call alone (us) | plain epoch (s) | note |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in json.loads(prox.read_text()):
            lines.append(
                f"| {r['code']} | {r['ratio']} | {r['median_pair_ratio']} | {r['in_training_call_us_median']} "
                f"| {r['in_training_ratio']} | {r['prox_call_us']} | {r['plain_epoch_s_median']} | {r['note']} |"
            )
    return lines


def dalr_section() -> list[str]:
    """DALR against SVD after domain transfer, and DALR's cost (benchmarks/dalr_*.py)."""
    table = RESULTS / "dalr_transfer.md"
    lines = []
    if table.exists():
        lines += [
            "## DALR against truncated SVD after domain transfer (benchmarks/dalr_transfer.py)",
            "",
            "Fashion-MNIST classes 0-4 (source) to 5-9 (target, 3,000 images to fine-tune, 2,000 others to",
            "calibrate, the 5,000 test images to test); a 784-1000-1000-5 MLP; both hidden layers compressed",
            "under one weight budget. Cells: the fewest weights kept in the two layers (of 1,784,000) among",
            "22 budgets whose target test accuracy is within the drop of the uncompressed model.",
            "",
            f"![DALR vs SVD]({table.with_suffix('.png').relative_to(RESULTS.parent)})",
            "",
            table.read_text().strip(),
            "",
        ]
    cost = RESULTS / "dalr_cost.json"
    if cost.exists():
        data = json.loads(cost.read_text())
        lines += [
            "### Cost on VGG fc sizes (benchmarks/dalr_cost.py)",
            "",
            f"Synthetic activations streamed in batches of {data['batch']}, {data['threads']} threads; "
            "each row its own process.",
            "",
            "| layer (out x in) | method | samples | seconds | peak resident memory (MiB) |",
            "|---|---|---|---|---|",
        ]
        for r in data["rows"]:
            samples = f"{r['samples']:,}" if r["method"] != "svd" else "-"
            lines.append(
                f"| {r['shape'][0]} x {r['shape'][1]} | {r['method']} | {samples} | {r['seconds']} | {r['peak_mib']} |"
            )
        lines.append("")
    return lines


def every_method_section() -> list[str]:
    """Every method on one Pareto front against the peers (benchmarks/methods_front.py)."""
    sections = [methods_front_section(m) for m in ("lenet300_100", "resnet_small", "lenet5")]
    if not any(sections):
        return []
    lines = [
        "## Every method on one front (benchmarks/methods_front.py)",
        "",
        "One study per model and seed (`sweeps/<model>_methods.yaml`, its seed the sampler's and the",
        "training's, 2 workers): every method with a trial budget of its own, the same epochs for all.",
        "The peers (Torch-Pruning MagnitudePruner and GroupNormPruner, Lightning ModelPruning) run at as many",
        "levels as a method has trials (4-5), for the same epochs, on the same seeds and data split.",
        "",
    ]
    for section in sections:
        lines += section
    paper = RESULTS / "dalr_paper.md"
    if paper.exists():
        lines += [
            "### DALR in its paper's setting (benchmarks/dalr_paper.py)",
            "",
            "A conv backbone (two 3x3 blocks, 32 and 64 channels) with wide fully connected layers (fc6 3,136 -> 1,024,",
            "fc7 1,024 -> 1,024) trained on Fashion-MNIST classes 0-4, its head replaced and the network fine-tuned on",
            "classes 5-9 transposed (a quarter turn and a mirror: other classes, other low-level statistics; 3,000",
            "images), fc6, fc7 or both split by SVD and by DALR (calibrated on 2,000 other target images) at 72",
            "budgets 1.08x apart (0.2% to 47% of the weights). Cells: the fewest weights kept within the drop of the",
            "fine-tuned dense network (target test set), SVD's over DALR's; without retraining (the paper) and",
            "after one epoch of fine-tuning the fully connected layers (the same for both).",
            "",
            f"![DALR vs SVD, paper setting]({paper.with_suffix('.png').relative_to(RESULTS.parent)})",
            "",
            paper.read_text().strip(),
            "",
        ]
    return lines


def throughput_section() -> list[str]:
    """Epoch ratios to a plain PyTorch loop and the demo sweep's trials per hour (benchmarks/throughput.py)."""
    path = RESULTS / "throughput.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    lines = [
        "## Throughput (benchmarks/throughput.py)",
        "",
        f"Run {data['date']}, {data['threads']} threads, real Fashion-MNIST, batch 128; each of our epochs "
        "(train + validation) is paired with a plain PyTorch epoch run just before it in the same process; "
        "medians after a warm-up epoch.",
        "",
        "| model | variant | batches/epoch | plain epoch (s) | our epoch (s) | ratio of medians "
        "| median pair ratio | pairs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in data["epochs"]:
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['batches_per_epoch']} | {r['plain_s']} | {r['ours_s']} "
            f"| {r['ratio_of_medians']} | {r['median_pair_ratio']} | {r['pairs']} |"
        )
    sweep = data.get("sweep")
    if sweep:
        lines += [
            "",
            f"Demo sweep (`sweeps/lenet300_fmnist.yaml`, 6 trials, W&B offline), this tree against "
            f"`{sweep['baseline']}`, alternating runs:",
            "",
            "| tree | workers | wall seconds per run | median trials/hour | gain |",
            "|---|---|---|---|---|",
        ]
        for key, runs in sweep["runs"].items():
            tree, workers = key.split("/workers=")
            gain = sweep["gain"][workers] if tree == "this_tree" else ""
            seconds = ", ".join(str(r["seconds"]) for r in runs)
            median = sweep["median_trials_per_hour"][key]
            lines.append(f"| {tree} | {workers} | {seconds} | {median:.1f} | {gain} |")
    unchanged = data.get("results_unchanged")
    if unchanged:
        lines += ["", f"Results unchanged ({unchanged['measured']}):", ""]
        for run, trees in unchanged.items():
            if run == "measured" or run.startswith("earlier"):
                continue
            for tree, r in trees.items():
                size = f", {r['params']:,} params" if "params" in r else ""
                fit = f", fit {r['fit_seconds']} s" if "fit_seconds" in r else ""
                lines.append(f"- {run}, {tree}: val {r['val_acc']}, test {r['test_acc']}{size}{fit}")
    return [*lines, ""]


def latency_section() -> list[str]:
    """Layers split in two against their dense form on one CPU thread (benchmarks/low_rank_latency.py)."""
    path = RESULTS / "low_rank_latency.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    lines = [
        "## Latency of split layers (benchmarks/low_rank_latency.py)",
        "",
        "One CPU thread, median forward time; rank as a share of break-even `m n / (m + n)`.",
        "",
        "| layer | batch | rank | dense (us) | split (us) | speed-up | MAC reduction |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["layers"]:
        lines.append(
            f"| {r['layer']} | {r['batch']} | {r['rank']} | {r['dense_us']} | {r['split_us']} "
            f"| {r['speedup']}x | {r['mac_reduction']}x |"
        )
    lines += [
        "",
        "| model | batch | parameters | dense (us) | split (us) | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for r in data["models"]:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['params'][0]:,} -> {r['params'][1]:,} | {r['dense_us']} "
            f"| {r['split_us']} | {r['speedup']}x |"
        )
    return [*lines, ""]


def main() -> None:
    runs = _load_jsonl(RESULTS / "group_sparsity_vs_peers.jsonl")
    lines = [
        "# Benchmark results",
        "",
        "Measured on this project's machines (2 CPU cores, no GPU) by the scripts beside this file;",
        "regenerate with `python benchmarks/summarize.py` (it also writes the README's table). The tables'",
        "rows are declared in `benchmarks/tables.py`, run by `benchmarks/group_sparsity_vs_peers.py`, and",
        "`benchmarks/reproduce.py` (in `make test`) re-runs one seed-0 cell of every row.",
        "",
        "## Fronts against the peers",
        "",
    ]
    for table in TABLES:
        lines += front_section(table, runs)
        if table.in_readme:
            write_readme_table(table, runs)
    lines += every_method_section()
    lines += size_target_section()
    lines += flexible_section()
    lines += zoo_section()
    lines += torchvision_section()
    lines += torch_pruning_section()
    lines += dalr_section()
    lines += latency_section()
    lines += throughput_section()
    lines += ["## Other measurements", ""]
    lines += json_section("baselines.json", "Dense baselines (benchmarks/baselines.py)")
    lines += json_section("prox_overhead.json", "Prox overhead (benchmarks/prox_overhead.py)")
    lines += json_section(
        "adam_sparsity.json", "Adam + L2 + ReLU near-zero neurons (benchmarks/adam_sparsity.py)"
    )
    lines += json_section("sweep_scaling.json", "Sweeps: workers and storage (benchmarks/sweep_scaling.py)")
    lines += json_section(
        "svt_speed.json", "Singular value thresholding: full against randomized SVD (benchmarks/svt_speed.py)"
    )
    lines += json_section(
        "lenet5_macs.json", "LeNet-5 MACs (benchmarks/group_sparsity_vs_peers.py --model lenet5)"
    )
    history = Path(__file__).resolve().parent / "history.md"
    if history.exists():
        lines += ["", history.read_text().rstrip()]
    lines += unchanged_section(_load_jsonl(RESULTS / "unchanged_behaviour.jsonl"))
    (Path(__file__).resolve().parent / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:40]))


if __name__ == "__main__":
    main()
