"""A throwaway PostgreSQL server on 127.0.0.1 under a temp folder (tests and benchmarks)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PASSWORD = "s3cret-for-tests"


def pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if not found:
        raise FileNotFoundError(
            f"PostgreSQL's {name} not found: run 'make setup' (scripts/install_postgres.sh)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_postgres(database: str = "optuna") -> Iterator[str]:
    """Start a server (as user postgres when run as root: initdb refuses root); yield its URL; stop it."""
    root = Path(tempfile.mkdtemp(prefix="lc-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    (root / "pw").write_text(PASSWORD + "\n")
    os.chmod(root / "pw", 0o644)
    data, port = root / "data", _free_port()
    init = [
        pg_bin("initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth=scram-sha-256",
        f"--pwfile={root / 'pw'}",
    ]
    subprocess.run([*as_user, *init], check=True, capture_output=True)
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root}"
    start = [pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
    subprocess.run([*as_user, *start], check=True, capture_output=True)
    try:
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {database}")
        yield f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(
            [*as_user, pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)
