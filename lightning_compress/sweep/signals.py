"""How a sweep worker learns to stop: Ctrl-C, SIGTERM, and the death of the process that started it."""

from __future__ import annotations

import os
import signal
import sys
import threading

from lightning_compress.sweep.trial import StopFlag

__all__ = ["stop_on_signals", "stop_with_parent"]


def stop_on_signals() -> StopFlag:
    """A :class:`StopFlag` set by Ctrl-C (SIGINT, once or many times), SIGTERM and the parent-death SIGUSR2.

    Example:
        >>> import os, signal
        >>> previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)}
        >>> stop = stop_on_signals()
        >>> os.kill(os.getpid(), signal.SIGINT); stop.wait(5.0)
        True
        >>> for s, handler in previous.items():
        ...     _ = signal.signal(s, handler)
    """
    stop = StopFlag()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def stop_with_parent(stop: StopFlag, interval: float = 1.0) -> None:
    """Stop this worker (its trial ends cleanly, failed and queued again) when the process that started
    it dies: a parent-death signal on Linux, and a watchdog on the parent's pid everywhere."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            # PR_SET_PDEATHSIG: SIGUSR2 when the parent exits (Lightning takes SIGTERM over during fit)
            libc.prctl(1, signal.SIGUSR2, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still notices

    def watch() -> None:
        while not stop.wait(interval):
            if os.getppid() != parent:
                print(f"worker {os.getpid()}: the sweep process {parent} is gone, stopping", file=sys.stderr)
                stop.set()

    if os.getppid() != parent or parent == 1:
        stop.set()
    threading.Thread(target=watch, daemon=True).start()
