"""How sweep workers start: forked from the coordinator, or as fresh interpreters.

On Linux workers are forked from the coordinator once it has imported torch and Lightning and created
the study, so the imports happen once. Elsewhere, with ``LIGHTNING_COMPRESS_WORKER_START=spawn``, or when
CUDA is already initialized in the coordinator (a forked child could not use it), each worker is a fresh
interpreter (multiprocessing's ``spawn``). The storage URL travels as an argument, never in a process list.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
from typing import Any

__all__ = ["START_ENV", "Workers", "start_method", "threads_for"]

START_ENV = "LIGHTNING_COMPRESS_WORKER_START"
"""``spawn`` starts every sweep worker as a fresh interpreter, also where forking is the default (Linux)."""


def start_method() -> str:
    """``"fork"`` on Linux (unless ``START_ENV`` says ``spawn`` or CUDA is up in this process), else ``"spawn"``.

    Example:
        >>> start_method() in ("fork", "spawn")
        True
    """
    torch = sys.modules.get("torch")
    cuda_up = torch is not None and torch.cuda.is_initialized()
    linux = sys.platform.startswith("linux")
    return "fork" if linux and not cuda_up and os.environ.get(START_ENV, "fork") != "spawn" else "spawn"


def threads_for(workers: int, threads_per_worker: int | None = None) -> int:
    """Torch threads per worker: ``threads_per_worker``, or the cores shared out.

    Example:
        >>> threads_for(1, 3)
        3
    """
    return threads_per_worker or max(1, (os.cpu_count() or 1) // max(1, workers))


class _Worker:
    """A worker process seen through the part of ``subprocess.Popen`` the coordinator uses."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.pid = process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
        return int(self.process.exitcode)

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        if self.process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


class Workers:
    """``count`` sweep workers with ``threads`` torch threads each, started by :meth:`start`."""

    def __init__(self, count: int, *, threads: int, offset: int = 0) -> None:
        self.count, self.threads, self.offset = count, threads, offset
        self.method = start_method()
        self.messages: Any = None

    def failures(self) -> list[str]:
        """The lines the workers sent since the last call (a failed write's description)."""
        lines = []
        while self.messages is not None and not self.messages.empty():
            lines.append(str(self.messages.get()))
        return lines

    def start(self, sweep: str, overrides: list[str], url: str, *, n_trials: int) -> list[_Worker]:
        """Start the workers on the study; returns them."""
        from lightning_compress.sweep.worker import run_worker

        context: Any = multiprocessing.get_context(self.method)
        self.messages = context.SimpleQueue()
        procs = []
        for index in range(self.count):
            order = {
                "sweep": sweep,
                "overrides": list(overrides),
                "storage": url,
                "n_trials": n_trials,
                "worker_index": self.offset + index,
            }
            process = context.Process(
                target=run_worker, args=(order, self.threads, self.messages), name=f"worker-{index}"
            )
            process.start()
            procs.append(_Worker(process))
        return procs
