"""A real PostgreSQL server on 127.0.0.1, started for this module and stopped after it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from .pg_server import PASSWORD, local_postgres
from .sweep_helpers import ROOT, write_sweep


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    try:
        with local_postgres() as url:
            yield url
    except FileNotFoundError as err:
        pytest.fail(str(err))


def test_two_worker_sweep_on_postgres(postgres_url: str, tiny_idx_dir: Path, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, tiny_idx_dir, n_trials=3)
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "lightning_compress.cli.main", "sweep", str(sweep), "--workers", "2"]
    proc = subprocess.run(
        [*cmd, "--storage", postgres_url], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert PASSWORD not in proc.stdout + proc.stderr
    assert "postgresql://postgres:***@127.0.0.1" in proc.stdout
    study = optuna.load_study(study_name="tiny", storage=postgres_url)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert all(Path(t.user_attrs["checkpoint"]).is_file() for t in complete)


def test_the_password_can_stay_out_of_every_command_line(
    postgres_url: str, tiny_idx_dir: Path, tmp_path: Path
) -> None:
    """The URL without its password on the command line, the password in PGPASSWORD (libpq reads it)."""
    sweep = write_sweep(tmp_path, tiny_idx_dir, n_trials=1, name="password_kept_out")
    without = postgres_url.replace(f":{PASSWORD}@", "@")
    assert PASSWORD not in without
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT), "PGPASSWORD": PASSWORD}
    cmd = [sys.executable, "-m", "lightning_compress.cli.main", "sweep", str(sweep), "--storage", without]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # or the whole URL in the environment, and no --storage at all
    env = {
        **os.environ,
        "WANDB_MODE": "disabled",
        "PYTHONPATH": str(ROOT),
        "LIGHTNING_COMPRESS_STORAGE": postgres_url,
    }
    cmd = [sys.executable, "-m", "lightning_compress.cli.main", "sweep", str(sweep), "n_trials=2"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert PASSWORD not in proc.stdout + proc.stderr
    study = optuna.load_study(study_name="password_kept_out", storage=postgres_url)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
