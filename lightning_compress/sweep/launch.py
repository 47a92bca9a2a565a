"""Start sweep workers early: they import torch and Lightning while the sweep file is checked.

Standard library only, so the command line can start the workers before it imports anything heavy. A
worker started with ``--wait`` imports everything, then waits for one JSON line on its stdin saying what to
run (the storage URL travels there, never in a process list); an empty stdin (the sweep file was bad, the
coordinator died) ends it quietly.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from typing import Any

__all__ = ["WorkerLaunch", "start_workers"]


class WorkerLaunch:
    """``count`` waiting worker processes with ``threads`` torch threads each.

    Example:
        >>> launch = WorkerLaunch(0, threads=1)
        >>> launch.go("sweeps/lenet300_fmnist.yaml", [], "journal.log", n_trials=1)
        []
    """

    def __init__(self, count: int, *, threads: int, offset: int = 0) -> None:
        self.threads = threads
        self.offset = offset
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        cmd = [sys.executable, "-m", "lightning_compress.sweep.worker", "--wait", "--threads", str(threads)]
        self.procs = [subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, text=True) for _ in range(count)]

    def go(self, sweep: str, overrides: list[str], url: str, *, n_trials: int) -> list[subprocess.Popen]:
        """Tell every worker what to run; returns the running processes."""
        for index, proc in enumerate(self.procs):
            order: dict[str, Any] = {
                "sweep": sweep,
                "overrides": list(overrides),
                "storage": url,
                "n_trials": n_trials,
                "worker_index": self.offset + index,
            }
            assert proc.stdin is not None
            try:
                proc.stdin.write(json.dumps(order) + "\n")
                proc.stdin.close()
            except BrokenPipeError:  # it died while importing: its exit code reports it
                pass
        return self.procs

    def cancel(self) -> None:
        """End workers that were never told what to run (they exit with code 0, printing nothing)."""
        for proc in self.procs:
            if proc.stdin is not None and not proc.stdin.closed:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_workers(workers: int, threads_per_worker: int | None = None, offset: int = 0) -> WorkerLaunch:
    """Start ``workers`` waiting workers with ``threads_per_worker`` threads each (default: the cores
    shared out).

    Example:
        >>> start_workers(0).procs
        []
    """
    threads = threads_per_worker or max(1, (os.cpu_count() or 1) // max(1, workers))
    return WorkerLaunch(workers, threads=threads, offset=offset)
