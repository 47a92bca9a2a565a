"""Sweeps under faults, with real processes: resumed without repeats, workers that stop with their
parent, killed workers reported, interrupted trials that leave no result behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from .sweep_helpers import ROOT, write_sweep


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _sweep_cmd(sweep: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lightning_compress.cli.main", "sweep", str(sweep), *args]


def _study(tmp_path: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "out" / "tiny" / "journal.log"))
    )
    return optuna.load_study(study_name="tiny", storage=storage)


def _running_worker(tmp_path: Path, parent: subprocess.Popen, timeout: float = 120) -> tuple[int, int]:
    """(trial number, worker pid) of the first trial seen running."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert parent.poll() is None, "the sweep ended before a trial ran"
        try:
            running = _study(tmp_path).get_trials(states=(TrialState.RUNNING,))
        except (KeyError, FileNotFoundError, ValueError):
            running = []
        for trial in running:
            if "worker" in trial.user_attrs:
                time.sleep(1.0)  # well inside fit
                return trial.number, int(str(trial.user_attrs["worker"]).rsplit(":", 1)[1])
        time.sleep(0.2)
    raise AssertionError("no trial started running")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie has exited


def test_a_resumed_sweep_does_not_repeat_trials(tiny_idx_dir: Path, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, tiny_idx_dir, n_trials=2)
    for budget in (2, 4):
        proc = subprocess.run(
            _sweep_cmd(sweep, f"n_trials={budget}"),
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    params = [
        tuple(sorted(t.params.items())) for t in _study(tmp_path).get_trials(states=(TrialState.COMPLETE,))
    ]
    assert len(params) == 4 and len(set(params)) == 4, params


def test_workers_stop_when_the_sweep_process_is_killed(tiny_idx_dir: Path, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, tiny_idx_dir, n_trials=2, epochs=400)
    with (tmp_path / "sweep.log").open("w") as log:
        parent = subprocess.Popen(_sweep_cmd(sweep), cwd=tmp_path, env=_env(), stdout=log, stderr=log)
        number, worker = _running_worker(tmp_path, parent)
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        deadline = time.time() + 60
        while _alive(worker) and time.time() < deadline:
            time.sleep(0.2)
    assert not _alive(worker), "the worker outlived the sweep process"
    trials = {t.number: t for t in _study(tmp_path).get_trials()}
    assert trials[number].state == TrialState.FAIL, (tmp_path / "sweep.log").read_text()[-3000:]
    assert "interrupted" in str(trials[number].user_attrs.get("fail_reason"))
    assert any(
        t.state == TrialState.WAITING and t.user_attrs.get("retry_of") == number for t in trials.values()
    )
    trial_dir = tmp_path / "out" / "tiny" / "trials" / f"trial-{number:04d}"
    assert (trial_dir / "checkpoints" / "last.ckpt").is_file(), "the epochs it did are kept"
    assert not (trial_dir / "final.ckpt").exists(), "a half-trained model is not written as a result"
    assert not (trial_dir / "summary.json").exists()


def test_a_killed_worker_is_reported_and_fails_the_sweep(tiny_idx_dir: Path, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, tiny_idx_dir, n_trials=2, epochs=400)
    parent = subprocess.Popen(
        _sweep_cmd(sweep), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _, worker = _running_worker(tmp_path, parent)
    os.kill(worker, signal.SIGKILL)
    _, err = parent.communicate(timeout=120)
    assert parent.returncode == 1, err[-3000:]
    assert "worker 0 was killed by SIGKILL" in err
    summary = json.loads((tmp_path / "out" / "tiny" / "summary.json").read_text())
    assert summary["worker_exit_codes"] == [-signal.SIGKILL]
    assert summary["workers_killed"] == 1 and summary["budget_met"] is False and summary["budget"] == 2
