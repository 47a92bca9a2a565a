"""Sweep benchmarks: wall time with 1 and 2 local workers, and storage overhead per trial.

1. The same sweep (default: sweeps/lenet300_fmnist.yaml, 6 trials, 3 epochs each, real Fashion-MNIST)
   run with --workers 1 and --workers 2 into fresh folders; the ratio t(2)/t(1) (0.5 is perfect on 2 cores).
2. Storage round trip per trial (ask, three user attributes, tell), median over --rounds trials, for the
   journal-file default and a throwaway PostgreSQL server on 127.0.0.1.
Usage: python benchmarks/sweep_scaling.py [--n-trials 6] [--rounds 50]; writes results/sweep_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "sweep_scaling.json"
sys.path.insert(0, str(ROOT))

from lightning_compress.sweep.storage import open_storage  # noqa: E402
from tests.pg_server import local_postgres  # noqa: E402


def sweep_seconds(sweep: str, workers: int, n_trials: int, out: Path, threads: int, epochs: int) -> float:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "lightning_compress.cli.main", "sweep", sweep, f"n_trials={n_trials}"]
    cmd += [f"trainer.max_epochs={epochs}"]
    cmd += [f"output_dir={out}", "--workers", str(workers), "--threads-per-worker", str(threads)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def round_trip_ms(url: str, rounds: int) -> float:
    storage = open_storage(url)
    study = optuna.create_study(
        study_name=f"overhead-{time.time_ns()}", storage=storage, directions=["minimize", "maximize"]
    )
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        trial = study.ask()
        trial.set_user_attr("worker", "bench")
        trial.set_user_attr("heartbeat", time.time())
        trial.set_user_attr("params", i)
        study.tell(trial, [float(i), 0.5])
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sweep", default=str(ROOT / "sweeps" / "lenet300_fmnist.yaml"))
    parser.add_argument("--n-trials", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-storage", action="store_true")
    args = parser.parse_args()
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if not args.skip_scaling:
        with tempfile.TemporaryDirectory() as tmp:
            one_1t = sweep_seconds(args.sweep, 1, args.n_trials, Path(tmp) / "a", 1, args.epochs)
            one_2t = sweep_seconds(args.sweep, 1, args.n_trials, Path(tmp) / "b", 2, args.epochs)
            two = sweep_seconds(args.sweep, 2, args.n_trials, Path(tmp) / "c", 1, args.epochs)
        results[f"workers_{args.epochs}_epochs"] = {
            "sweep": Path(args.sweep).name,
            "n_trials": args.n_trials,
            "epochs_per_trial": args.epochs,
            "one_worker_1_thread_s": round(one_1t, 1),
            "one_worker_2_threads_s": round(one_2t, 1),
            "two_workers_1_thread_each_s": round(two, 1),
            "ratio_same_threads_per_worker": round(two / one_1t, 3),
            "ratio_vs_one_worker_on_both_cores": round(two / one_2t, 3),
            "measured": stamp,
        }
        print(json.dumps(results[f"workers_{args.epochs}_epochs"]))
    if args.skip_storage:
        OUT.write_text(json.dumps(results, indent=2) + "\n")
        return
    with tempfile.TemporaryDirectory() as tmp:
        journal = round_trip_ms(str(Path(tmp) / "journal.log"), args.rounds)
    with local_postgres() as url:
        postgres = round_trip_ms(url, args.rounds)
    results["storage_round_trip_ms"] = {
        "journal_file": round(journal, 2),
        "postgresql_loopback": round(postgres, 2),
        "rounds": args.rounds,
        "measured": stamp,
    }
    print(json.dumps(results["storage_round_trip_ms"]))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
