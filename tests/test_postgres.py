"""A real PostgreSQL server on 127.0.0.1, started for this module and stopped after it."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from .sweep_helpers import ROOT, write_sweep

PASSWORD = "s3cret-for-tests"


def _bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if not found:
        pytest.fail(
            f"PostgreSQL's {name} not found: run 'make setup' (scripts/install_postgres.sh installs it)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="lc-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(root, 0o777)
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    (root / "pw").write_text(PASSWORD + "\n")
    os.chmod(root / "pw", 0o644)
    data, port = root / "data", _free_port()
    subprocess.run(
        [
            *as_user,
            _bin("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={root / 'pw'}",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root}"
    subprocess.run(
        [*as_user, _bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE optuna")
        yield f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run(
            [*as_user, _bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


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
    assert len({t.user_attrs["worker"] for t in study.trials}) >= 1
