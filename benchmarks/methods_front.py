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


def run_peers(model: str, seeds: list[int]) -> None:
    import group_sparsity_vs_peers as gsvp
    import lightning.pytorch as pl

    from lightning_compress.data import FashionMNISTDataModule

    spec = MODELS[model]
    dm = FashionMNISTDataModule(batch_size=128)

    def inspect(module: Any, data: Any) -> dict[str, Any]:
        trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
        val = float(trainer.validate(module, data, verbose=False)[0]["val/acc"])
        return {"val_acc": round(val, 4), **_timing(module.model, data.normalization())}

    for seed in seeds:
        dense = gsvp._module(seed, model)
        row = {"method": "dense", "seed": seed, "model": model, **dense.size()}
        rows = [{**row, **_timing(dense.model, dm.normalization())}]
        for peer in PEERS:
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


def _peer_rows(model: str) -> list[dict[str, Any]]:
    path = RESULTS / f"methods_front_{model}_peers.jsonl"
    raw = (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )
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
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(MODELS), default="lenet300_100")
    parser.add_argument("--what", choices=["sweep", "peers"], default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--summarize", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.what == "sweep":
        run_sweeps(args.model, args.seeds, args.workers)
    elif args.what == "peers":
        run_peers(args.model, args.seeds)
    if args.summarize:
        print(json.dumps(summarize(args.model), indent=1))


if __name__ == "__main__":
    main()
