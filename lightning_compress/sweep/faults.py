"""Failed writes during a sweep: recognized, named in one line, and never left in the journal half-written.

A full disk (or a quota, a read-only remount) must stop a sweep cleanly: the first failed write is
reported once, with its path, and every record already in the journal stays readable. The journal file
is appended to under Optuna's lock; an append that fails is cut back to where it started, and a journal
left with a torn last record (a writer killed mid-write, or an older version on a full disk) is repaired
before anything is appended to it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from lightning_compress.config.load import ConfigError

__all__ = ["JournalFile", "WriteFailed", "repair_journal", "watch_log_writes", "write_failure"]

WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO})
_RECORD_START = b'{"op_code"'


class WriteFailed(OSError):
    """A write the sweep needs failed; its message is the one line to show (path, reason, what to do)."""


def write_failure(err: BaseException | None) -> OSError | None:
    """The failed write behind ``err`` (itself, or an exception it was raised from), or ``None``.

    Example:
        >>> write_failure(OSError(errno.ENOSPC, "No space left on device", "/data/journal.log")).filename
        '/data/journal.log'
        >>> write_failure(FileNotFoundError(errno.ENOENT, "No such file")) is None
        True
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
            return err
        err = err.__cause__ or err.__context__
    return None


def describe(err: OSError) -> str:
    """One line for a failed write: the path and the reason, and how to go on.

    Example:
        >>> describe(OSError(errno.ENOSPC, "No space left on device", "/data/journal.log"))
        'cannot write /data/journal.log: No space left on device; the sweep stopped: free space, then run the same command to resume'
    """
    reason = err.strerror or os.strerror(err.errno or 0)
    what = (
        reason if reason.startswith("cannot write") else f"cannot write {err.filename or 'a file'}: {reason}"
    )
    return f"{what}; the sweep stopped: free space, then run the same command to resume"


class JournalFile(JournalFileBackend):
    """Optuna's journal file, with appends that either land whole or leave the file as it was.

    A failed append (``ENOSPC`` midway through a record) is truncated back to the size before it, and the
    error names the file.
    """

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        lock = self._lock
        lock.acquire()
        try:
            fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND)
            try:
                start = os.fstat(fd).st_size  # under the lock: no other writer moves the end
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                except OSError as err:
                    os.ftruncate(fd, start)  # frees space: never fails for lack of it
                    raise OSError(err.errno, err.strerror, self._file_path) from None
            finally:
                os.close(fd)
        finally:
            lock.release()


def _record(line: bytes) -> bool:
    try:
        value = json.loads(line)
    except ValueError:
        return False
    return isinstance(value, dict) and "op_code" in value


def _scan(data: bytes, path: str) -> tuple[list[bytes], int, bool]:
    """``(complete records, bytes dropped, whether a record inside the file was mended)``."""
    lines = data.split(b"\n")
    tail = lines.pop()  # what follows the last newline: empty when the file ends whole
    kept, dropped, inside = [], len(tail), False
    for number, line in enumerate(lines, start=1):
        if _record(line):
            kept.append(line)
            continue
        start = line.rfind(_RECORD_START)  # a torn record with the next append written onto it
        if start > 0 and _record(line[start:]):
            kept.append(line[start:])
            dropped, inside = dropped + start, True
            continue
        raise ConfigError(
            "storage",
            f"{path}: line {number} is not a journal record and cannot be repaired; keep the first "
            f"{number - 1} records with `head -n {number - 1}` into a new file, or start a new study",
        )
    return kept, dropped, inside


def repair_journal(path: str | os.PathLike[str]) -> str | None:
    """Drop a journal's torn records, keeping every complete one; returns the line saying so, or ``None``.

    A torn last record is cut off in place (no space needed). A torn record that a later append was
    written onto is mended by rewriting the file; the damaged original is kept beside it as
    ``<name>.damaged``. A line that is no record at all raises :class:`ConfigError`. Runs under the
    journal's lock, so a writer's append in progress is never mistaken for a torn one.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "journal.log"
        >>> _ = path.write_bytes(b'{"op_code":0,"worker_id":"w","study_name":"s"}\\n{"op_code":4,"wor')
        >>> repair_journal(path).split(": ", 1)[1]
        'dropped a torn last record (17 bytes, from a write that did not finish); kept all 1 complete records'
        >>> repair_journal(path) is None
        True
    """
    path = str(path)
    if not os.path.exists(path) or _intact(Path(path).read_bytes()):
        return None
    lock = JournalFileSymlinkLock(path)
    lock.acquire()
    try:
        data = Path(path).read_bytes()
        kept, dropped, inside = _scan(data, path)
        if not dropped:
            return None
        if not inside:
            os.truncate(path, len(data) - len(data.split(b"\n")[-1]))
            where = "a torn last record"
        else:
            part, damaged = f"{path}.part", f"{path}.damaged"
            Path(part).write_bytes(b"".join(line + b"\n" for line in kept))
            if os.path.exists(damaged):
                os.remove(damaged)
            os.link(path, damaged)
            os.replace(part, path)
            where = f"torn records (the original is kept as {damaged})"
    finally:
        lock.release()
    return f"{path}: dropped {where} ({dropped} bytes, from a write that did not finish); kept all {len(kept)} complete records"


def _intact(data: bytes) -> bool:
    if data and not data.endswith(b"\n"):
        return False
    return all(_record(line) for line in data.splitlines())


def watch_log_writes(on_failure: Callable[[OSError], None]) -> None:
    """Report a logging handler's failed write (W&B's and Lightning's log files) through ``on_failure``
    instead of a traceback per record: logging's own error dump is turned off in this process."""
    logging.raiseExceptions = False
    original = logging.Handler.handleError

    def handle_error(self: logging.Handler, record: logging.LogRecord) -> None:
        import sys

        failure = write_failure(sys.exc_info()[1])
        if failure is None:
            original(self, record)
            return
        if failure.filename is None:
            failure.filename = getattr(self, "baseFilename", None)
        on_failure(failure)

    logging.Handler.handleError = handle_error  # type: ignore[method-assign]
