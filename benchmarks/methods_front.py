"""Every method on one Pareto front, against the peers at the same budgets, on real Fashion-MNIST.

For a model (``--model``) and each seed (the sampler's and the training's), ``--what sweep`` runs the
model's sweep file (``sweeps/<model>_methods.yaml``: every method with its own trial budget, the same epochs
for all) with 2 local workers (``--workers``), and ``--what peers`` trains each peer (Torch-Pruning
MagnitudePruner and GroupNormPruner, Lightning ModelPruning; ``group_sparsity_vs_peers.py``'s recipes) at
as many levels as a method has trials, for the same epochs, on the same seeds and data split; each peer
model's validation accuracy is taken and its exported program timed as the sweep times ours.
``--summarize`` compares:

- cells at 50/80/90/95% fewer parameters (or MACs): per seed, among the runs at least that much smaller,
  the one with the best validation accuracy (the model a user would pick from the front), its test
  accuracy; the mean over seeds (and the best-test-accuracy rule of the other tables beside it);
- hypervolume of each method's front, of the union of ours and of each peer, by the size measure and by
  measured latency (batch 256, one thread): (measure / dense, 1 - val acc) up to (1, 1), mean over seeds;
- every union-front model of seed 0 timed again alone (batch 256 and batch 1, one thread): speed-up over
  MAC reduction, and where the front by latency differs from the front by MACs;
- the study's wall time.

Usage: python benchmarks/methods_front.py --model lenet300_100 --what sweep --seeds 0 1 2
       python benchmarks/methods_front.py --model lenet300_100 --what peers --seeds 0
       python benchmarks/methods_front.py --model lenet300_100 --summarize
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "runs" / "methods_front"
PEERS = ("tp_magnitude", "tp_groupnorm", "lt_pruning")
CELLS = (0.5, 0.8, 0.9, 0.95)
MODELS: dict[str, dict[str, Any]] = {
    # peers' levels: the channel ratio; by MACs, 1 - sqrt(1 - L) removes about L of a conv net's MACs
    "lenet300_100": {"measure": "params", "epochs": 20, "levels": [0.5, 0.7, 0.8, 0.9, 0.95]},
    "lenet5": {"measure": "macs", "epochs": 8, "levels": [0.29, 0.45, 0.55, 0.68]},
    "resnet_small": {"measure": "macs", "epochs": 2, "levels": [0.29, 0.55, 0.68, 0.78]},
}


def sweep_file(model: str) -> Path:
    return ROOT / "sweeps" / f"{model.replace('_100', '')}_methods.yaml"


def run_sweeps(model: str, seeds: list[int], workers: int) -> None:
    for seed in seeds:
        name = f"{model}_methods_s{seed}" + (f"_w{workers}" if workers != 2 else "")
        cmd = [str(ROOT / ".venv" / "bin" / "lightning-compress"), "sweep", str(sweep_file(model))]
        cmd += [f"name={name}", f"sampler.seed={seed}", f"seed={seed}", f"output_dir={RUNS}"]
        cmd += ["wandb.enabled=false", "--workers", str(workers)]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        row = {"model": model, "seed": seed, "workers": workers, "name": name}
        row["wall_s"] = round(time.perf_counter() - start, 1)
        with (RESULTS / f"methods_front_{model}_walls.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")


def _timing(module: torch.nn.Module, normalize: Any, batches: tuple[int, ...] = (256,)) -> dict[str, float]:
    from lightning_compress.surgery import export_model, measure_latency

    with tempfile.TemporaryDirectory() as folder:
        info = export_model(module, folder, torch.zeros(1, 1, 28, 28), normalize=normalize)
        program = torch.export.load(info["program"]).module()
        out = {}
        for batch in batches:
            t = measure_latency(program, torch.zeros(1, 1, 28, 28), batch_size=batch, threads=1)
            out[f"latency_b{batch}"], out[f"latency_b{batch}_iqr"] = t.median_ms, round(t.spread_ms, 4)
    return out


def run_peers(model: str, seeds: list[int], peers: tuple[str, ...] = PEERS) -> None:
    import group_sparsity_vs_peers as gsvp
    import lightning.pytorch as pl

    from lightning_compress.data import FashionMNISTDataModule

    spec = MODELS[model]
    dm = FashionMNISTDataModule(batch_size=128)

    def inspect(module: Any, data: Any) -> dict[str, Any]:
        trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
        val = float(trainer.validate(module, data, verbose=False)[0]["val/acc"])
        return {"val_acc": round(val, 4), **_timing(module.model, data.normalization())}

    for seed in seeds:  # the dense model trained for the same epochs, then each peer at each level
        rows = [gsvp.run("dense", 0.0, spec["epochs"], seed, dm, model, inspect=inspect)]
        for peer in peers:
            for level in spec["levels"]:
                rows.append(gsvp.run(peer, level, spec["epochs"], seed, dm, model, inspect=inspect))
                print(json.dumps(rows[-1]), flush=True)
        with (RESULTS / f"methods_front_{model}_peers.jsonl").open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)


def _study_rows(model: str, seed: int) -> list[dict[str, Any]]:
    import optuna
    from optuna.trial import TrialState

    from lightning_compress.sweep.storage import open_storage

    name = f"{model}_methods_s{seed}"
    storage = open_storage(str(RUNS / name / "journal.log"), create=False)
    study = optuna.load_study(study_name=name, storage=storage)
    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        if any(c > 0 for c in t.system_attrs.get("constraints", [])):
            continue
        rows.append(
            {
                "trial": t.number, "method": a["method"], "seed": seed, "params": a["params"],
                "macs": a["macs"], "latency": a.get("latency"), "dense_latency": a.get("dense_latency"),
                "dense_params": a["dense_params"], "dense_macs": a["dense_macs"], "val_acc": t.values[1],
                "test_acc": a["test_acc"], "checkpoint": a["checkpoint"], "size_of": a.get("size_of"),
                "overrides": a.get("overrides"), "share": a.get("share"), "widths": a.get("widths"),
            }
        )  # fmt: skip
    return rows


def cell(rows: list[dict[str, Any]], level: float, measure: str, rule: str) -> float | None:
    """Per seed, among runs removing >= level of ``measure``: the test accuracy of the best by validation
    accuracy (``rule="val"``) or the best test accuracy (``"test"``); the mean over seeds with one."""
    values = []
    for seed in sorted({r["seed"] for r in rows}):
        ok = [r for r in rows if r["seed"] == seed and 1 - r[measure] / r[f"dense_{measure}"] >= level]
        if ok:
            pick = max(ok, key=lambda r: (r["val_acc"], r["test_acc"]) if rule == "val" else r["test_acc"])
            values.append(pick["test_acc"])
    return statistics.mean(values) if values else None


def per_seed(rows: list[dict[str, Any]], level: float, measure: str) -> dict[int, float]:
    out = {}
    for seed in sorted({r["seed"] for r in rows}):
        ok = [r for r in rows if r["seed"] == seed and 1 - r[measure] / r[f"dense_{measure}"] >= level]
        if ok:
            out[seed] = max(ok, key=lambda r: (r["val_acc"], r["test_acc"]))["test_acc"]
    return out


def hypervolume(rows: list[dict[str, Any]], measure: str) -> float:
    """Mean over seeds of the area the runs dominate in (measure / dense, 1 - val acc) up to (1, 1)."""
    from lightning_compress.sweep.report import hypervolume_2d

    values = []
    for seed in sorted({r["seed"] for r in rows}):
        pts = [
            (r[measure] / r[f"dense_{measure}"], 1 - r["val_acc"])
            for r in rows
            if r["seed"] == seed and r.get(measure) is not None and r.get(f"dense_{measure}")
        ]
        values.append(hypervolume_2d(pts, (1.0, 1.0)))
    return round(statistics.mean(values), 4) if values else math.nan


def _raw_peers(model: str) -> list[dict[str, Any]]:
    path = RESULTS / f"methods_front_{model}_peers.jsonl"
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def _peer_rows(model: str) -> list[dict[str, Any]]:
    raw = _raw_peers(model)
    dense = {r["seed"]: r for r in raw if r["method"] == "dense"}
    rows = []
    for r in raw:
        if r["method"] == "dense" or r["seed"] not in dense:
            continue
        d = dense[r["seed"]]
        rows.append(
            {**r, "dense_params": d["params"], "dense_macs": d["macs"], "latency": r["latency_b256"],
             "dense_latency": d["latency_b256"]}
        )  # fmt: skip
    return rows


def retime(rows: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """Every run of ``rows`` (one seed) timed again alone at batch 256 and 1, one thread; the dense model."""
    import group_sparsity_vs_peers as gsvp

    from lightning_compress.data import FashionMNISTDataModule
    from lightning_compress.run.compress import load_checkpoint

    norm = FashionMNISTDataModule(batch_size=128).normalization()
    dense = _timing(gsvp._module(0, model), norm, (256, 1))
    timed = []
    for r in rows:
        t = _timing(load_checkpoint(r["checkpoint"]), norm, (256, 1))
        timed.append({**r, **t})
    return {"dense": dense, "runs": timed}


def _front(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    out, best = [], -1.0
    for r in sorted(rows, key=lambda r: (r[key], -r["val_acc"])):
        if r["val_acc"] > best:
            out.append(r)
            best = r["val_acc"]
    return out


def summarize(model: str) -> dict[str, Any]:
    spec = MODELS[model]
    measure = spec["measure"]
    ours: list[dict[str, Any]] = []
    seeds = []
    for seed in (0, 1, 2):
        if (RUNS / f"{model}_methods_s{seed}" / "journal.log").is_file():
            ours += _study_rows(model, seed)
            seeds.append(seed)
    with (RESULTS / f"methods_front_{model}_trials.jsonl").open("w") as f:  # ours, as recorded
        f.writelines(json.dumps({k: v for k, v in r.items() if k != "checkpoint"}) + "\n" for r in ours)
    peers = [r for r in _peer_rows(model) if r["seed"] in seeds]
    groups: dict[str, list[dict[str, Any]]] = {
        m: [r for r in ours if r["method"] == m] for m in sorted({r["method"] for r in ours})
    }
    groups["union (ours)"] = ours
    for p in PEERS:
        groups[p] = [r for r in peers if r["method"] == p]
    out: dict[str, Any] = {"model": model, "measure": measure, "seeds": seeds, "epochs": spec["epochs"]}
    out["cells"] = {
        g: {
            f"{lvl:g}": {"val": cell(rs, lvl, measure, "val"), "test": cell(rs, lvl, measure, "test")}
            for lvl in CELLS
        }
        for g, rs in groups.items()
    }
    out["per_seed"] = {
        g: {f"{lvl:g}": per_seed(rs, lvl, measure) for lvl in CELLS} for g, rs in groups.items()
    }
    out["hypervolume"] = {
        g: {measure: hypervolume(rs, measure), "latency": hypervolume(rs, "latency")}
        for g, rs in groups.items()
    }
    out["trials"] = {g: len(rs) / max(len(seeds), 1) for g, rs in groups.items()}
    dense = {r["seed"]: r for r in _raw_peers(model) if r["method"] == "dense" and "test_acc" in r}
    out["dense_test_acc"] = {s: dense[s]["test_acc"] for s in seeds if s in dense}
    walls = RESULTS / f"methods_front_{model}_walls.jsonl"
    out["walls"] = (
        [json.loads(x) for x in walls.read_text().splitlines() if x.strip()] if walls.exists() else []
    )
    if 0 in seeds:
        timed = retime([r for r in ours if r["seed"] == 0], model)
        dense = timed["dense"]
        runs = timed["runs"]
        for r in runs:
            for b in (256, 1):
                speed = dense[f"latency_b{b}"] / r[f"latency_b{b}"]
                r[f"speedup_over_mac_reduction_b{b}"] = round(speed / (r["dense_macs"] / r["macs"]), 3)
        by_macs = _front(runs, "macs")
        by_latency = _front(runs, "latency_b256")
        out["seed0_front"] = [
            {k: r[k] for k in ("trial", "method", "params", "macs", "latency_b256", "latency_b1", "val_acc",
                               "test_acc", "speedup_over_mac_reduction_b256", "speedup_over_mac_reduction_b1")}
            for r in _front(runs, measure)
        ]  # fmt: skip
        out["seed0_dense_latency"] = dense
        out["front_by_macs_only"] = [(r["trial"], r["method"]) for r in by_macs if r not in by_latency]
        out["front_by_latency_only"] = [(r["trial"], r["method"]) for r in by_latency if r not in by_macs]
    (RESULTS / f"methods_front_{model}.json").write_text(json.dumps(out, indent=1) + "\n")
    png = RUNS / f"{model}_methods_s0" / "pareto.png"  # the report's own figure of seed 0
    if png.is_file():
        shutil.copyfile(png, RESULTS.parent / f"front_{model}_methods.png")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(MODELS), default="lenet300_100")
    parser.add_argument("--what", choices=["sweep", "peers", "dense"], default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--summarize", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.what == "sweep":
        run_sweeps(args.model, args.seeds, args.workers)
    elif args.what in ("peers", "dense"):
        run_peers(args.model, args.seeds, PEERS if args.what == "peers" else ())
    if args.summarize:
        print(json.dumps(summarize(args.model), indent=1))


if __name__ == "__main__":
    main()


def _pct(v: float | None) -> str:
    return f"{100 * v:.2f}" if v is not None else "-"


def front_section(model: str) -> list[str]:
    """RESULTS.md's section for one model's study (``methods_front_<model>.json``; empty when not run)."""
    path = RESULTS / f"methods_front_{model}.json"
    if not path.is_file():
        return []
    d = json.loads(path.read_text())
    m, seeds = d["measure"], d["seeds"]
    dense = d.get("dense_test_acc") or {}
    mean_dense = statistics.mean(dense.values()) if dense else None
    figure = RESULTS.parent / f"front_{model}_methods.png"
    lines = [
        f"### {model}, by {m}, {d['epochs']} epochs a run, seeds {', '.join(map(str, seeds))}",
        "",
        *([f"![seed 0's study, as its report draws it]({figure.name})", ""] if figure.is_file() else []),
        f"Dense, same epochs: {_pct(mean_dense)}% test accuracy (mean of seeds). Cells: per seed, among the "
        f"runs removing at least that share of the {m}, the test accuracy of the one with the best validation "
        "accuracy (in brackets: the best test accuracy); the mean over seeds. Hypervolume: (size / dense, "
        "1 - val acc) up to (1, 1), by the size and by the latency measured on the worker (batch 256, one "
        "thread), mean over seeds. Trials: a method's runs per seed (flexible rank: one trained model and its sizes).",
        "",
        f"| method | runs/seed | >= 50% fewer | >= 80% fewer | >= 90% fewer | >= 95% fewer | HV {m} | HV latency |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g, cells in d["cells"].items():
        row = " | ".join(f"{_pct(c['val'])} ({_pct(c['test'])})" for c in cells.values())
        hv = d["hypervolume"][g]
        name = f"**{g}**" if g == "union (ours)" else g
        lines.append(f"| {name} | {d['trials'][g]:.1f} | {row} | {hv[m]:.4f} | {hv['latency']:.4f} |")
    lines += ["", "Union against the best peer per level (per-seed differences of the cells above):", ""]
    for lvl in CELLS:
        key = f"{lvl:g}"
        union = d["per_seed"]["union (ours)"][key]
        peers = {p: d["per_seed"][p][key] for p in PEERS}
        diffs = []
        for s in map(str, seeds):
            best = max((v[s] for v in peers.values() if s in v), default=None)
            if s in union and best is not None:
                diffs.append(union[s] - best)
        if diffs:
            noise = statistics.stdev(diffs) if len(diffs) > 1 else math.nan
            lines.append(
                f"- >= {100 * lvl:.0f}% fewer: union - best peer = {100 * statistics.mean(diffs):+.2f} points "
                f"(per seed {', '.join(f'{100 * x:+.2f}' for x in diffs)}; their standard deviation {100 * noise:.2f})"
            )
    if d.get("seed0_front"):
        lines += [
            "",
            "Seed 0's union front, each model timed again alone (one thread; speed-up over MAC reduction: "
            "(dense latency / latency) / (dense MACs / MACs)):",
            "",
            "| trial | method | params | MACs | ms, batch 256 | ms, batch 1 | val acc | speed-up / MAC reduction, 256 | same, batch 1 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in d["seed0_front"]:
            lines.append(
                f"| {r['trial']} | {r['method']} | {r['params']:,} | {r['macs']:,} | {r['latency_b256']:.3f} | "
                f"{r['latency_b1']:.4f} | {100 * r['val_acc']:.2f} | {r['speedup_over_mac_reduction_b256']:.2f} | "
                f"{r['speedup_over_mac_reduction_b1']:.2f} |"
            )
        dl = d["seed0_dense_latency"]
        lines += [
            "",
            f"Dense: {dl['latency_b256']:.3f} ms (batch 256), {dl['latency_b1']:.4f} ms (batch 1). On the front by "
            f"MACs only: {d['front_by_macs_only'] or 'none'}; on the front by latency (batch 256) only: "
            f"{d['front_by_latency_only'] or 'none'}.",
        ]
    path = RESULTS / f"methods_front_{model}_walls.jsonl"  # every study run, as recorded
    walls = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
    if walls:
        lines += [
            "",
            "Wall time of each study: "
            + ", ".join(f"seed {w['seed']} with {w['workers']} workers {w['wall_s']:.0f} s" for w in walls)
            + ".",
        ]
        one = {w["seed"]: w["wall_s"] for w in walls if w["workers"] == 1}
        two = {w["seed"]: w["wall_s"] for w in walls if w["workers"] == 2}
        for seed in sorted(set(one) & set(two)):
            lines.append(
                f"Seed {seed}: 1 worker (2 torch threads) over 2 workers (1 each) {one[seed] / two[seed]:.2f}x; "
                "the 2-worker study shared the cores with the peers' runs, the 1-worker one ran alone."
            )
    return [*lines, ""]
