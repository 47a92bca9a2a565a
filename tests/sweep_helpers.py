"""Tiny sweeps on a generated IDX set, for the sweep tests."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def write_sweep(folder: Path, data_dir: Path, *, n_trials: int = 4, epochs: int = 1, **extra: object) -> Path:
    sweep = {
        "name": "tiny",
        "base": str(ROOT / "configs" / "lenet300_fmnist.yaml"),
        "overrides": [
            f"data.data_dir={data_dir}",
            "data.val_size=16",
            "data.batch_size=16",
            f"trainer.max_epochs={epochs}",
            "model.kwargs.hidden=[32,16]",
        ],
        "methods": {
            "group_lasso": {
                "compression": {
                    "group_sparsity": {"strength": 0.01, "log_effective_size": False},
                    "pruning": {},
                },
                "search_space": {
                    "compression.group_sparsity.strength": {
                        "type": "float",
                        "low": 0.001,
                        "high": 0.3,
                        "log": True,
                    }
                },
            }
        },
        "n_trials": n_trials,
        "output_dir": str(folder / "out"),
        "heartbeat_seconds": 1.0,
        "stale_after_seconds": 6.0,
        "wandb": {"mode": "offline", "tags": ["test"]},
    }
    sweep.update(extra)
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path
