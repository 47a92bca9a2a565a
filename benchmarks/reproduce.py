"""Re-run one seed-0 cell of every row of every results table, and fail when a figure differs.

For each table in ``tables.TABLES`` (the README's and ``RESULTS.md``'s) and each row (dense included),
the run that makes the row's first filled seed-0 cell (its best test accuracy at the smallest column it
reaches) is run again with the current code, at one torch thread per process (where training is
deterministic), and its test accuracy, parameter and MAC counts and widths are compared with the
recorded ones. The DALR transfer table (``dalr_transfer.py``) is checked the same way: per method, the
seed-0 run behind its "no fine-tune, <= 2 pt drop" cell; and the one-front study on LeNet-300-100
(``methods_front.py``): per method, the seed-0 trial behind its cell, trained again from its sweep file. A change that moves a result re-records it in
the same commit; this script is part of ``make test``.

Usage: python benchmarks/reproduce.py [--workers 2] [--tables NAME ...] [--dry-run]
Exit status 0 when every figure is reproduced, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tables import LEVELS, TABLES, Table

RESULTS = Path(__file__).resolve().parent / "results" / "group_sparsity_vs_peers.jsonl"
DALR_RESULTS = RESULTS.parent / "dalr_transfer.jsonl"
COMPARED = ("test_acc", "params", "macs", "widths")  # the first is always printed
DALR_COMPARED = ("acc", "base_acc", "kept", "ranks", "acc_ft")
FRONT_RESULTS = RESULTS.parent / "methods_front_lenet300_100_trials.jsonl"
FRONT_SWEEP = Path(__file__).resolve().parents[1] / "sweeps" / "lenet300_methods.yaml"
FRONT_COMPARED = ("val_acc", "test_acc", "params", "macs", "widths")


def cell_run(table: Table, runs: list[dict], method: str, levels: tuple[float, ...]) -> dict | None:
    """The seed-0 run behind ``method``'s first filled cell of ``table`` (``None``: nothing recorded).

    Example:
        >>> rows = [{"method": "m", "seed": 0, "level": 1, "test_acc": 0.8, "removed_params": 0.6},
        ...         {"method": "m", "seed": 0, "level": 2, "test_acc": 0.9, "removed_params": 0.55}]
        >>> cell_run(TABLES[0], rows, "m", (1, 2))["level"]
        2
    """
    mine = [r for r in runs if r["method"] == method and r["seed"] == 0 and r["level"] in levels]
    if method == "dense":
        return mine[0] if mine else None
    for level in LEVELS:
        candidates = [r for r in mine if r[table.key] >= level]
        if candidates:
            return max(candidates, key=lambda r: (r["test_acc"], -r["level"]))
    return None


def dalr_cells(rows: list[dict]) -> dict[str, dict]:
    """Per method of the DALR transfer table, the seed-0 run behind its "no fine-tune, <= 2 pt drop" cell:
    the fewest weights kept within 2 points of the dense model (the smallest share on a tie).

    Example:
        >>> rows = [{"seed": 0, "method": "svd", "share": s, "kept": k, "acc": a, "base_acc": 0.9}
        ...         for s, k, a in ((0.1, 10, 0.85), (0.2, 20, 0.89), (0.4, 40, 0.9))]
        >>> dalr_cells(rows)["svd"]["share"]
        0.2
    """
    cells = {}
    for method in dict.fromkeys(r["method"] for r in rows if r["seed"] == 0):
        ok = [
            r for r in rows if r["seed"] == 0 and r["method"] == method and r["acc"] >= r["base_acc"] - 0.02
        ]
        if ok:
            cells[method] = min(ok, key=lambda r: (r["kept"], r["share"]))
    return cells


def front_cells(rows: list[dict]) -> dict[str, dict]:
    """Per method of the one-front study (``methods_front.py``), the seed-0 trial behind its cell: its best
    by validation accuracy among its trained trials removing >= 80% of the parameters, else its smallest.

    Example:
        >>> rows = [{"seed": 0, "method": "m", "size_of": None, "params": p, "dense_params": 100, "val_acc": a}
        ...         for p, a in ((10, 0.8), (15, 0.85), (50, 0.9))]
        >>> front_cells(rows)["m"]["params"]
        15
    """
    cells = {}
    trained = [r for r in rows if r["seed"] == 0 and r.get("size_of") is None]
    for method in dict.fromkeys(r["method"] for r in trained):
        mine = [r for r in trained if r["method"] == method]
        small = [r for r in mine if r["params"] <= 0.2 * r["dense_params"]]
        cells[method] = (
            max(small, key=lambda r: r["val_acc"]) if small else min(mine, key=lambda r: r["params"])
        )
    return cells


def _rerun_trial(job: tuple[str, dict]) -> dict:
    """Train a recorded sweep trial again (its sweep file, seed, method and sampled values)."""
    import tempfile

    from lightning_compress.config.load import load_config
    from lightning_compress.run import train
    from lightning_compress.sweep.load import load_sweep, sweep_paths

    _quiet()
    sweep, row = job
    cfg = load_sweep(sweep, [f"seed={row['seed']}"])
    base, _ = sweep_paths(cfg, sweep)
    extra = [{"compression": dict(cfg.methods[row["method"]].compression)}]
    overrides = [*cfg.overrides, *row["overrides"], "trainer.enable_progress_bar=false"]
    with tempfile.TemporaryDirectory() as folder:
        summary = train(load_config(base, overrides, extra=extra), run_dir=folder)
    return {**summary, "val_acc": summary["val_acc"], "method": row["method"], "trial": row["trial"]}


def _quiet() -> None:
    """One torch thread, and no training chatter in the test log (Lightning's info lines, prints)."""
    import logging
    import os
    import warnings

    import torch

    torch.set_num_threads(1)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning_compress"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")  # the data loader's worker count and the like, once per process
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the worker process's own stdout, for its lifetime)


def _rerun_dalr(shares: dict[str, list[float]]) -> list[dict]:
    import dalr_transfer

    _quiet()

    args = argparse.Namespace(
        source_epochs=5, target_epochs=10, target_train=3000, calibration=2000, cache=None, ridge=0.0
    )
    return dalr_transfer.run(args, 0, shares=shares)


def _rerun(job: tuple[str, float, int, str, str, dict]) -> dict:
    method, level, epochs, model, normalize, variant = job
    from group_sparsity_vs_peers import run  # imports Lightning, which sets its loggers' levels

    _quiet()

    from lightning_compress.data import FashionMNISTDataModule

    dm = FashionMNISTDataModule(batch_size=128, normalize=normalize)
    return run(method, level, epochs, 0, dm, model, None, variant)


def _compare(table: str, method: str, level: float, recorded: dict, now: dict, keys: tuple[str, ...]) -> int:
    """Print a row per figure (the first always, the others when they differ); the number that differ."""
    differ = 0
    for i, key in enumerate(keys):
        same = now[key] == recorded[key]
        differ += not same
        if not same or i == 0:
            flag = "" if same else " DIFFERS"
            print(f"| {table} | {method} | {level:g} | {key} | {recorded[key]} | {now[key]}{flag} |")
    return differ


def _cells(rows: list[dict], names: list[str] | None) -> list[tuple[Table, str, dict | None]]:
    cells = []
    for table in TABLES:
        if names and table.name not in names:
            continue
        runs = table.runs(rows)
        cells.append((table, "dense", cell_run(table, runs, "dense", (0.0,))))
        for row in table.rows:
            cells.append((table, row.method, cell_run(table, runs, row.method, row.levels)))
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2, help="processes, one torch thread each")
    parser.add_argument(
        "--tables",
        nargs="*",
        default=None,
        help=f"of {[t.name for t in TABLES]}, dalr_transfer and methods_front",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the cells, run nothing")
    args = parser.parse_args()
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    cells = _cells(rows, args.tables)
    missing = [f"{t.name}: {m}" for t, m, r in cells if r is None]
    if missing:
        print(f"reproduce: no recorded seed-0 run for {', '.join(missing)}", file=sys.stderr)
        return 1
    jobs = [
        (r["method"], r["level"], r["epochs"], t.model, t.normalize, r.get("variant", {}))
        for t, _, r in cells
        if r
    ]
    for (t, m, r), job in zip(cells, jobs, strict=True):
        print(f"{t.name}: {m}:{job[1]:g} (recorded {r['test_acc']:.2%}, {r['params']:,} params)" if r else "")
    dalr: dict[str, dict] = {}
    if not args.tables or "dalr_transfer" in args.tables:
        if not DALR_RESULTS.is_file():
            print(f"reproduce: no recorded DALR transfer runs ({DALR_RESULTS})", file=sys.stderr)
            return 1
        dalr = dalr_cells(
            [json.loads(line) for line in DALR_RESULTS.read_text().splitlines() if line.strip()]
        )
    for method, r in dalr.items():
        print(f"dalr_transfer: {method}:{r['share']:g} (recorded {r['acc']:.2%}, {r['kept']:,} weights)")
    front: dict[str, dict] = {}
    if not args.tables or "methods_front" in args.tables:
        trials = [json.loads(line) for line in FRONT_RESULTS.read_text().splitlines() if line.strip()]
        front = front_cells(trials)
    for method, r in front.items():
        print(
            f"methods_front: {method}: trial {r['trial']} (recorded {r['val_acc']:.2%} val, {r['params']:,} params)"
        )
    if args.dry_run:
        return 0
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        dalr_job = (
            pool.apply_async(_rerun_dalr, ({m: [r["share"]] for m, r in dalr.items()},)) if dalr else None
        )
        front_jobs = [(str(FRONT_SWEEP), r) for r in front.values()]
        front_fresh = pool.map_async(_rerun_trial, front_jobs, chunksize=1)
        fresh = pool.map(_rerun, jobs, chunksize=1)
        dalr_fresh = dalr_job.get() if dalr_job is not None else []
        front_now = front_fresh.get()
    print("\n| table | method | level | figure | recorded | now |\n|---|---|---|---|---|---|")
    failures = 0
    for (t, m, r), now in zip(cells, fresh, strict=True):
        assert r is not None
        failures += _compare(t.name, m, r["level"], r, now, COMPARED)
    for now in dalr_fresh:
        r = dalr[now["method"]]
        failures += _compare("dalr_transfer", now["method"], r["share"], r, now, DALR_COMPARED)
    for now in front_now:
        r = front[now["method"]]
        failures += _compare("methods_front", now["method"], r["trial"], r, now, FRONT_COMPARED)
    seconds = time.perf_counter() - start
    verdict = "every figure reproduced" if not failures else f"{failures} figure(s) differ"
    print(f"\nreproduce: {len(cells) + len(dalr) + len(front)} cells, {verdict} ({seconds:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
