"""Sweeps and commands under the faults an operator meets: a disk that fills mid-sweep (on a real small
filesystem), a journal torn by a write that did not finish, a study name that is not there, a file that
is not a Lightning checkpoint, an output folder that cannot be written. Each ends in one line and exit
status 2, and nothing already completed is lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from lightning_compress.config import ConfigError
from lightning_compress.sweep.faults import JournalFile, repair_journal
from lightning_compress.sweep.storage import open_storage

from .sweep_helpers import ROOT, mounted_tmpfs, write_sweep


def _cli(
    *args: str, cwd: Path, wandb: str = "disabled", timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "WANDB_MODE": wandb}
    cmd = [sys.executable, "-m", "lightning_compress.cli.main", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The only line on stderr: an error, exit status 2, no traceback."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("lightning-compress: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _study(journal: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=JournalStorage(JournalFileBackend(str(journal))))


def _completed(journal: Path) -> dict[int, list[float]]:
    return {t.number: list(t.values) for t in _study(journal).get_trials(states=(TrialState.COMPLETE,))}


def _fill(disk: Path, leave: int) -> Path:
    """A ballast file that leaves ``leave`` bytes free on ``disk``."""
    ballast = disk / "ballast"
    free = shutil.disk_usage(disk).free
    with open(ballast, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, max(0, free - leave))
    return ballast


def test_a_full_disk_stops_the_sweep_with_one_line_and_resume_finds_every_trial(
    tiny_idx_dir: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    with mounted_tmpfs(disk, "size=24m") as mounted:
        if not mounted:
            pytest.skip("cannot mount a small filesystem here (needs root)")
        sweep = write_sweep(disk, tiny_idx_dir, n_trials=4)
        journal = disk / "out" / "tiny" / "journal.log"
        first = _cli("sweep", str(sweep), "--n-trials", "2", cwd=tmp_path, wandb="offline")
        assert first.returncode == 0, first.stderr[-3000:]
        assert "anonymous" not in first.stderr, "W&B's deprecation warning is not shown once per worker"
        done = _completed(journal)
        assert len(done) == 2

        ballast = _fill(disk, leave=48 * 1024)
        full = _cli("sweep", str(sweep), "--workers", "2", cwd=tmp_path, wandb="offline")
        line = _error_line(full, "cannot write", str(disk), "run the same command to resume")
        data = journal.read_bytes()
        assert data.endswith(b"\n"), "no record was left half-written"
        assert all(json.loads(record) for record in data.splitlines())
        assert _completed(journal) == done, line

        ballast.unlink()
        resumed = _cli("sweep", str(sweep), "--workers", "2", cwd=tmp_path, wandb="offline")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        after = _completed(journal)
        assert len(after) == 4
        assert {n: after[n] for n in done} == done, "every trial completed before the disk filled is kept"


def _torn_by_a_full_disk(disk: Path) -> tuple[Path, int]:
    """A journal written by Optuna's own backend until the disk is full: its last record is cut off, then
    (space freed) new records are appended, the first onto the cut line, as a rerun did. Returns the journal and how
    many trials were complete before the tear."""
    journal = disk / "journal.log"
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="tiny", storage=storage, directions=["minimize", "maximize"])
    for i in range(3):
        study.add_trial(optuna.trial.create_trial(values=[float(i), 0.5], params={}, distributions={}))
    ballast = _fill(disk, leave=100)
    with pytest.raises(OSError):
        study.set_user_attr("note", "x" * 4096)
    ballast.unlink()
    assert not journal.read_bytes().endswith(b"\n"), "the failed write left a torn record"
    rerun = JournalFileBackend(str(journal))
    rerun.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "other", "directions": [1]}])
    rerun.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "third", "directions": [1]}])
    return journal, 3


def test_a_torn_journal_is_repaired_keeping_every_complete_record(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with mounted_tmpfs(disk, "size=256k") as mounted:
        if not mounted:
            pytest.skip("cannot mount a small filesystem here (needs root)")
        journal, complete = _torn_by_a_full_disk(disk)
        with pytest.raises(json.JSONDecodeError):
            _study(journal).get_trials()  # what the issue saw: the study cannot be read at all
        line = repair_journal(journal)
        assert line is not None and "torn" in line and f"{journal}.damaged" in line
        study = optuna.load_study(study_name="tiny", storage=open_storage(str(journal)))
        assert [t.values for t in study.get_trials()] == [[float(i), 0.5] for i in range(complete)]
        assert "other" in {s.study_name for s in optuna.get_all_study_summaries(open_storage(str(journal)))}
        assert (disk / "journal.log.damaged").is_file()


def test_a_torn_last_record_is_cut_and_a_foreign_line_refused(tmp_path: Path) -> None:
    journal = tmp_path / "journal.log"
    study = optuna.create_study(
        study_name="tiny",
        storage=JournalStorage(JournalFile(str(journal))),
        directions=["minimize", "maximize"],
    )
    study.add_trial(optuna.trial.create_trial(values=[1.0, 0.5], params={}, distributions={}))
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code":5,"worker_id":"w","trial_')
    line = repair_journal(journal)
    assert line is not None and "torn last record (36 bytes" in line and "kept all" in line
    assert journal.read_bytes() == whole
    journal.write_bytes(whole + b"not a record\n")
    with pytest.raises(ConfigError, match="line 3 is not a journal record.*head -n 2"):
        repair_journal(journal)


def test_a_failed_journal_append_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with mounted_tmpfs(disk, "size=256k") as mounted:
        if not mounted:
            pytest.skip("cannot mount a small filesystem here (needs root)")
        journal = disk / "journal.log"
        study = optuna.create_study(
            study_name="tiny", storage=JournalStorage(JournalFile(str(journal))), directions=["minimize"]
        )
        before = journal.read_bytes()
        ballast = _fill(disk, leave=100)
        with pytest.raises(OSError) as err:
            study.set_user_attr("note", "x" * 4096)
        assert err.value.filename == str(journal)
        assert journal.read_bytes() == before
        ballast.unlink()


def test_report_names_a_missing_study(tiny_idx_dir: Path, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, tiny_idx_dir, n_trials=1)
    _error_line(_cli("report", str(sweep), "name=nosuch", cwd=tmp_path), "does not exist", "nosuch")
    assert not (tmp_path / "out" / "nosuch").exists(), "report creates nothing"
    assert _cli("sweep", str(sweep), cwd=tmp_path).returncode == 0
    journal = tmp_path / "out" / "tiny" / "journal.log"
    proc = _cli("report", str(sweep), "name=nosuch", f"storage={journal}", cwd=tmp_path)
    _error_line(proc, "no study 'nosuch'", "it holds 'tiny'")


def test_export_and_compress_refuse_bad_files_and_folders_before_work(
    tiny_idx_dir: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), plain)
    _error_line(_cli("export", str(plain), "--out", "exported", cwd=tmp_path), "not a Lightning checkpoint")
    proc = _cli("compress", "missing.ckpt", "--params", "0.5", "--out", "o.ckpt", cwd=tmp_path)
    _error_line(proc, "checkpoint: file not found: 'missing.ckpt'")
    train = _cli(
        "train", "lenet300_fmnist", f"data.data_dir={tiny_idx_dir}", "data.val_size=16", "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false", "output_dir=out", cwd=tmp_path,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    (final,) = tmp_path.glob("out/*/*/final.ckpt")
    readonly = tmp_path / "ro"
    with mounted_tmpfs(readonly, "size=1m,ro") as mounted:
        if not mounted:
            pytest.skip("cannot mount a read-only filesystem here (needs root)")
        proc = _cli(
            "compress", str(final), "--params", "0.5", "--out", str(readonly / "small.ckpt"), cwd=tmp_path
        )
        _error_line(proc, "--out", str(readonly), "Read-only file system")
        proc = _cli("export", str(final), "--out", str(readonly / "exported"), cwd=tmp_path)
        _error_line(proc, "--out", "Read-only file system")
