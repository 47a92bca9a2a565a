"""Optuna storages for sweeps: an embedded journal file by default, PostgreSQL (or any RDB URL) for many machines."""

from __future__ import annotations

import os
import sys
import urllib.parse
import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage

from lightning_compress.config.load import ConfigError
from lightning_compress.sweep.faults import JournalFile, repair_journal

__all__ = ["default_storage_url", "load_existing_study", "open_storage", "redact"]


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe to print or log.

    Example:
        >>> redact("postgresql://alice:s3cret@db.example:5432/optuna")
        'postgresql://alice:***@db.example:5432/optuna'
        >>> redact("runs/sweeps/demo/journal.log")
        'runs/sweeps/demo/journal.log'
    """
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else f":***@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def default_storage_url(sweep_dir: str | os.PathLike[str]) -> str:
    """The embedded default: a journal file in the sweep's folder (safe for several local workers)."""
    return str(Path(sweep_dir) / "journal.log")


def _is_journal(url: str) -> bool:
    return "://" not in url or url.startswith("journal://")


def open_storage(url: str, *, create: bool = True) -> BaseStorage:
    """Open (creating when needed) the storage at ``url``.

    ``url`` is a journal file path (``*.log``, or ``journal:///abs/path``), or an SQLAlchemy URL such as
    ``postgresql://user:password@host:5432/db``. An unreachable database raises :class:`ConfigError`
    naming the URL with its password redacted. A journal whose last record was torn by a write that
    did not finish is repaired first (every complete record kept), with one line on stderr saying so.
    With ``create=False`` a journal file that does not exist is a :class:`ConfigError`.
    """
    if _is_journal(url):
        path = url[len("journal://") :] if url.startswith("journal://") else url
        if not create and not Path(path).is_file():
            raise ConfigError("storage", f"{path} does not exist: no sweep of that name has run there yet")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        repaired = repair_journal(path)
        if repaired:
            print(f"lightning-compress: {repaired}", file=sys.stderr)
        return JournalStorage(JournalFile(path))
    if url.startswith("sqlite"):
        warnings.warn(
            "SQLite storage is not safe for parallel workers (see Optuna's FAQ); use the journal default or "
            "PostgreSQL",
            stacklevel=2,
        )
    try:
        return RDBStorage(url, engine_kwargs={"pool_pre_ping": True, **_connect_args(url)})
    except ImportError as err:
        raise ConfigError(
            "storage",
            f"{redact(url)}: a driver is missing ({err}); pip install 'lightning-compress[postgres]'",
        ) from None
    except Exception as err:  # SQLAlchemy's errors carry the URL: say what failed without it
        reason = str(getattr(err, "orig", None) or type(err).__name__).strip().splitlines()[0]
        raise ConfigError("storage", f"cannot open {redact(url)}: {reason}") from None


def _connect_args(url: str) -> dict[str, object]:
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": 10}}
    return {}


def create_or_load_study(
    storage: BaseStorage, name: str, sampler: optuna.samplers.BaseSampler | None = None
) -> optuna.Study:
    """Create the two-objective study (size down, accuracy up) once, or load it when it exists."""
    return optuna.create_study(
        study_name=name,
        storage=storage,
        directions=["minimize", "maximize"],
        sampler=sampler,
        load_if_exists=True,
    )


def load_existing_study(storage: BaseStorage, name: str, where: str) -> optuna.Study:
    """The study ``name`` in ``storage``; a name it does not hold is a :class:`ConfigError` listing the
    names it does (``where``: the storage as it may be shown)."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = sorted(s.study_name for s in storage.get_all_studies())
        held = (
            f"; it holds {', '.join(map(repr, names))} (set name= to one)" if names else ", which holds none"
        )
        raise ConfigError("name", f"no study {name!r} in {where}{held}") from None
