"""Tiny sweeps on a generated IDX set, for the sweep tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def mounted_tmpfs(folder: Path, options: str) -> Iterator[bool]:
    """A small tmpfs at ``folder`` where this machine lets us mount one (root), else nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    ok = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
