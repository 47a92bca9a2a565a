"""Dense baselines on real Fashion-MNIST: epochs, wall time and test accuracy of each config.

Usage: python benchmarks/baselines.py [CONFIG ...]   (default: the two LeNet configs)
Writes benchmarks/results/baselines.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch

from lightning_compress.config import load_config
from lightning_compress.run import train

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["configs/lenet300_fmnist.yaml", "configs/lenet5_fmnist.yaml"]
TARGETS = {"lenet300_fmnist": 0.89, "lenet5_fmnist": 0.90}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("configs", nargs="*", default=DEFAULT)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "baselines.json"))
    args = parser.parse_args()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    for path in args.configs:
        cfg = load_config(ROOT / path, ["trainer.enable_progress_bar=false"])
        with tempfile.TemporaryDirectory() as tmp:
            summary = train(cfg, run_dir=tmp)
        row = {
            "config": path,
            "epochs": summary["epochs"],
            "fit_seconds": summary["fit_seconds"],
            "seconds_per_epoch": round(summary["fit_seconds"] / max(summary["epochs"], 1), 2),
            "val_acc": round(summary["val_acc"], 4),
            "test_acc": round(summary["test_acc"], 4),
            "params": summary["params"],
            "macs": summary["macs"],
            "target_test_acc": TARGETS.get(cfg.name),
            "torch_threads": torch.get_num_threads(),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
            "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }
        results[cfg.name] = row
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'config':<22}{'epochs':>7}{'wall s':>9}{'s/epoch':>9}{'test acc':>10}{'target':>8}{'params':>9}")
    for name, row in results.items():
        target = row.get("target_test_acc")
        print(
            f"{name:<22}{row['epochs']:>7}{row['fit_seconds']:>9.1f}{row['seconds_per_epoch']:>9.2f}"
            f"{row['test_acc']:>10.4f}{target if target else '-':>8}{row['params']:>9}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
