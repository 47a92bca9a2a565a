"""How sweep workers start: forked from the coordinator, or as fresh interpreters started early.

On Linux workers are forked from the coordinator once it has imported torch and Lightning and created
the study, so the imports happen once. Elsewhere (or with ``LIGHTNING_COMPRESS_WORKER_START=spawn``) each
worker is a fresh interpreter, started before the coordinator imports anything heavy: it imports
everything, then waits for one JSON line on its stdin saying what to run (the storage URL travels there,
never in a process list); an empty stdin (the sweep file was bad, the coordinator died) ends it quietly.
This module uses the standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from typing import Any

__all__ = ["START_ENV", "ForkedWorkers", "WorkerLaunch", "fork_available", "start_workers"]

START_ENV = "LIGHTNING_COMPRESS_WORKER_START"
"""``spawn`` starts every sweep worker as a fresh interpreter, also where forking is the default (Linux)."""


def fork_available() -> bool:
    """Whether sweep workers are forked from the coordinator: on Linux, unless ``START_ENV`` says ``spawn``.

    Example:
        >>> isinstance(fork_available(), bool)
        True
    """
    return sys.platform.startswith("linux") and os.environ.get(START_ENV, "fork") != "spawn"


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
        self.count = count
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        cmd = [sys.executable, "-m", "lightning_compress.sweep.worker", "--wait", "--threads", str(threads)]
        self.procs = [subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, text=True) for _ in range(count)]

    def go(self, sweep: str, overrides: list[str], url: str, *, n_trials: int) -> list[Any]:
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
    return WorkerLaunch(workers, threads=threads_for(workers, threads_per_worker), offset=offset)


class _Forked:
    """A forked worker seen through the part of ``subprocess.Popen`` the coordinator uses."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.pid = process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int | None:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
        return self.process.exitcode

    def send_signal(self, sig: int) -> None:
        if self.process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.process.kill()


class ForkedWorkers:
    """``count`` workers forked from the coordinator once it has imported everything and made the study:
    they share its imports instead of each importing torch and Lightning again (Linux only)."""

    def __init__(self, count: int, *, threads: int, offset: int = 0) -> None:
        self.count, self.threads, self.offset = count, threads, offset
        self.procs: list[Any] = []

    def go(self, sweep: str, overrides: list[str], url: str, *, n_trials: int) -> list[Any]:
        """Fork the workers; returns them."""
        import multiprocessing

        from lightning_compress.sweep.worker import run_forked

        torch = sys.modules.get("torch")
        cuda_up = torch is not None and torch.cuda.is_initialized()
        # CUDA cannot be used again in a child forked after it started: such children start fresh
        context: Any = multiprocessing.get_context("spawn" if cuda_up else "fork")
        for index in range(self.count):
            order = {
                "sweep": sweep,
                "overrides": list(overrides),
                "storage": url,
                "n_trials": n_trials,
                "worker_index": self.offset + index,
            }
            process = context.Process(target=run_forked, args=(order, self.threads), name=f"worker-{index}")
            process.start()
            self.procs.append(_Forked(process))
        return self.procs

    def cancel(self) -> None:
        """Nothing to end: workers are forked only by :meth:`go`."""


def threads_for(workers: int, threads_per_worker: int | None = None) -> int:
    """Torch threads per worker: ``threads_per_worker``, or the cores shared out.

    Example:
        >>> threads_for(1, 3)
        3
    """
    return threads_per_worker or max(1, (os.cpu_count() or 1) // max(1, workers))
