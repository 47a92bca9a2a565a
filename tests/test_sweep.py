from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lightning_compress.cli.main import main
from lightning_compress.sweep.load import load_sweep
from lightning_compress.sweep.storage import open_storage, redact
from tests.zoo import zoo_if_named

from .sweep_helpers import ROOT, write_sweep
from .wandb_files import run_summary

CLI = [sys.executable, "-m", "lightning_compress.cli.main"]


def _study(sweep: Path) -> optuna.Study:
    cfg = load_sweep(sweep)
    return optuna.load_study(
        study_name=cfg.name, storage=open_storage(str(Path(cfg.output_dir) / cfg.name / "journal.log"))
    )


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("start", ["fork", "spawn"])  # workers forked from the sweep process, or fresh
def test_two_workers_exact_count_and_reports(start: str, tiny_idx_dir: Path, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, tiny_idx_dir, n_trials=4, epochs=2, objectives={"accuracy_floor": 0.0})
    proc = subprocess.run(
        [*CLI, "sweep", str(sweep), "--workers", "2"],
        cwd=tmp_path,
        env={**_env(), "LIGHTNING_COMPRESS_WORKER_START": start},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = _study(sweep)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    assert all(Path(t.user_attrs["checkpoint"]).is_file() for t in complete)
    assert all(t.user_attrs["worker"].rsplit(":", 1)[1].isdigit() for t in complete)
    # learning curves and the floor, where optuna-dashboard reads them
    assert all(sorted(t.intermediate_values) == [0, 1] for t in complete)
    assert all(t.system_attrs["constraints"] == [pytest.approx(-t.values[1])] for t in complete)
    out = tmp_path / "out" / "tiny"
    assert (out / "pareto.png").stat().st_size > 10_000 and (out / "pareto.html").is_file()
    assert (
        "hypervolume" in proc.stdout
        and "plot:" in proc.stdout
        and "Pareto models, each one command" in proc.stdout
    )
    assert (
        "\x1b[" not in proc.stdout + proc.stderr and "tiny: 4/4 trials done" in proc.stdout
    )  # a log, not a TTY
    assert "experimental" not in proc.stderr
    front = study.best_trials
    assert all(
        f"trial {t.number:>4}: lightning-compress export {t.user_attrs['checkpoint']} --out" in proc.stdout
        for t in front
    )
    runs = [run_summary(f) for f in (out / "wandb").glob("offline-run-*")]
    assert len(runs) == 5  # one per trial and the summary
    trial_run = next(r for r in runs if r["job_type"] == "trial")
    assert {"data", "optimizer", "trainer", "compression", "method", "search"} <= set(trial_run["config"])
    assert trial_run["config"]["search"].keys() == {"compression.group_sparsity.strength"}
    (summary_run,) = [r for r in runs if r["job_type"] == "summary"]
    assert sorted(a for a, kind in summary_run["artifacts"] if kind == "model") == sorted(
        f"tiny-trial-{t.number:04d}" for t in front
    )
    # the report command reads the same storage and updates the same summary run
    report = subprocess.run(
        [*CLI, "report", str(sweep)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert report.returncode == 0 and "hypervolume" in report.stdout
    ids = [run_summary(f)["id"] for f in (out / "wandb").glob("offline-run-*")]
    assert len(ids) == 6 and len(set(ids)) == 5


def test_hopeless_trial_stops_early_and_is_pruned(tiny_idx_dir: Path, tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path, tiny_idx_dir, n_trials=1, epochs=5, early_stop={"after_epoch": 0, "min_val_acc": 1.01}
    )
    proc = subprocess.run(
        [*CLI, "sweep", str(sweep)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (trial,) = _study(sweep).trials
    assert trial.state == TrialState.PRUNED
    assert "after epoch 0" in trial.user_attrs["pruned_reason"]
    assert trial.user_attrs["epochs"] == 1  # stopped after the first of five epochs
    assert "no completed trial yet: 1 pruned by the early-stop rule" in proc.stdout


def test_accuracy_floor_is_an_optuna_constraint(tiny_idx_dir: Path, tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path, tiny_idx_dir, n_trials=1, objectives={"size": "params", "accuracy_floor": 0.999}
    )
    proc = subprocess.run(
        [*CLI, "sweep", str(sweep)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = _study(sweep)
    (trial,) = study.get_trials(states=(TrialState.COMPLETE,))
    assert any(k.startswith("constraints") or "constraint" in k for k in trial.system_attrs)
    assert study.best_trials == [] and "front is empty" in proc.stdout


def test_nan_trial_fails_with_reason_and_sweep_goes_on(tiny_idx_dir: Path, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, tiny_idx_dir, n_trials=2, epochs=2)
    cfg = load_sweep(sweep)
    storage = open_storage(str(Path(cfg.output_dir) / cfg.name / "journal.log"))
    study = optuna.create_study(study_name="tiny", storage=storage, directions=["minimize", "maximize"])
    # a first trial whose loss diverges: a learning rate of 1e12 via the base overrides of a pinned trial
    study.enqueue_trial({"group_lasso/compression.group_sparsity.strength": 0.01}, user_attrs={"note": "nan"})
    env = {**_env()}
    bad = write_sweep(tmp_path, tiny_idx_dir, n_trials=1, epochs=2)
    text = bad.read_text().replace("model.kwargs.hidden=[32,16]", "optimizer.lr=1.0e12")
    bad.write_text(text)
    proc = subprocess.run(
        [*CLI, "sweep", str(bad)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # every trial diverged: the budget is not met
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert failed and all("FloatingPointError" in t.user_attrs["fail_reason"] for t in failed)
    assert "failed: FloatingPointError" in proc.stdout
    # the same study, sane learning rate: it goes on and completes its budget
    sweep.write_text(
        text.replace("optimizer.lr=1.0e12", "optimizer.lr=0.05").replace("n_trials: 1", "n_trials: 2")
    )
    proc = subprocess.run(
        [*CLI, "sweep", str(sweep)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2


def _wait_running(sweep: Path, timeout: float = 120) -> optuna.trial.FrozenTrial:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            running = _study(sweep).get_trials(states=(TrialState.RUNNING,))
        except KeyError:
            running = []
        # the worker tags the trial before it samples: wait for both, so the kill comes after sampling
        if running and "worker" in running[0].user_attrs and running[0].params:
            return running[0]
        time.sleep(0.2)
    raise AssertionError("no trial started")


def test_sigkilled_worker_trial_is_failed_and_retried(tiny_idx_dir: Path, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, tiny_idx_dir, n_trials=3, epochs=30)
    proc = subprocess.Popen(
        [*CLI, "sweep", str(sweep), "--workers", "2"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    victim = _wait_running(sweep)
    pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]  # the other worker met the budget
    assert "was killed by SIGKILL" in err
    study = _study(sweep)
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL and "no heartbeat" in killed.user_attrs["fail_reason"]
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == victim.number]
    assert retried and retried[0].state == TrialState.COMPLETE and retried[0].params == victim.params
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3


_STOP_CHILD = """
import time
from lightning_compress.sweep.worker import stop_on_signals
stop = stop_on_signals()
print("ready", flush=True)
end = time.monotonic() + 1.5
while time.monotonic() < end:
    stop.set()  # what the handler does: a burst of SIGINTs lands inside it
print("stopped" if stop.is_set() else "not set", flush=True)
"""


def test_stop_flag_survives_a_burst_of_ctrl_c() -> None:
    # SIGINT reaches a worker twice (the terminal's process group, then the coordinator forwarding it);
    # with a lock in the handler a second signal inside the first handler hung the worker for good
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", _STOP_CHILD], env=_env(), stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for _ in range(200):
            os.kill(child.pid, signal.SIGINT)
        try:
            out, _ = child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            pytest.fail("the worker's stop handler deadlocked under repeated SIGINT")
        assert child.returncode == 0 and out.strip() == "stopped"


def test_ctrl_c_stops_cleanly_and_resumes(tiny_idx_dir: Path, tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path, tiny_idx_dir, n_trials=2, epochs=200
    )  # a trial outlasts the second before the interrupt, even on a fast machine
    cmd = [*CLI, "sweep", str(sweep)]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    victim = _wait_running(sweep)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "run the same command again to resume" in out
    assert "Traceback" not in err
    study = _study(sweep)
    assert study.trials[victim.number].state == TrialState.FAIL
    assert study.get_trials(states=(TrialState.WAITING,))  # queued again
    again = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    study = _study(sweep)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert any(
        t.user_attrs.get("retry_of") == victim.number for t in study.get_trials(states=(TrialState.COMPLETE,))
    )


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        (["nosuchkey=1"], "nosuchkey"),
        (["n_trials=0"], "n_trials"),
        (["sampler.name=bayes"], "sampler.name"),
        (["methods.group_lasso.search_space.compression\\.group_sparsity\\.strength.low=1"], None),
    ],
)
def test_bad_sweep_input_one_line_exit_2(
    extra: list[str], key: str | None, tiny_idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = write_sweep(tmp_path, tiny_idx_dir)
    code = main(["sweep", str(sweep), *extra])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    if key:
        assert err.startswith(f"lightning-compress: error: {key}"), err


@pytest.mark.parametrize(
    ("space", "key", "problem"),
    [
        ({"type": "float", "low": 1.0, "high": 0.1}, "search_space.optimizer.lr", "low must be <= high"),
        ({"type": "float", "low": 0.0, "high": 0.1, "log": True}, "search_space.optimizer.lr", "low > 0"),
        ({"type": "categorical", "choices": []}, "search_space.optimizer.lr", "choices"),
    ],
)
def test_bad_space(
    space: dict,
    key: str,
    problem: str,
    tiny_idx_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sweep = write_sweep(tmp_path, tiny_idx_dir, search_space={"optimizer.lr": space})
    assert main(["sweep", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lightning-compress: error: {key}: ") and problem in err


def test_empty_search_space(tiny_idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = write_sweep(tmp_path, tiny_idx_dir, methods={})
    assert main(["sweep", str(sweep)]) == 2
    assert capsys.readouterr().err.startswith(
        "lightning-compress: error: search_space: the search space is empty"
    )


def test_unknown_method_section_and_unknown_key(
    tiny_idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = write_sweep(
        tmp_path, tiny_idx_dir, methods={"low_rank": {"compression": {"nuclear": {"strength": 1}}}}
    )
    assert main(["sweep", str(sweep)]) == 2
    assert "methods.low_rank.compression.nuclear" in capsys.readouterr().err
    sweep = write_sweep(
        tmp_path, tiny_idx_dir, search_space={"optimizer.learning_rate": {"low": 0.1, "high": 1.0}}
    )
    assert main(["sweep", str(sweep)]) == 2
    assert "search_space.optimizer.learning_rate" in capsys.readouterr().err


def test_unreachable_storage_is_redacted(
    tiny_idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = write_sweep(tmp_path, tiny_idx_dir)
    url = "postgresql://alice:hunter2secret@127.0.0.1:9/optuna"
    assert main(["sweep", str(sweep), "--storage", url]) == 2
    captured = capsys.readouterr()
    assert "hunter2secret" not in captured.err + captured.out
    assert captured.err.startswith(
        "lightning-compress: error: storage: cannot open postgresql://alice:***@127.0.0.1:9/optuna"
    )
    assert len(captured.err.strip().splitlines()) == 1


def test_redact() -> None:
    assert redact("postgresql+psycopg2://u:p%40ss@h/db") == "postgresql+psycopg2://u:***@h/db"
    assert redact("postgresql://h/db") == "postgresql://h/db"


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_sweep_file_validates(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Schema, methods against the run schema, search space and base config of each shipped sweep."""
    zoo_if_named(path.read_text(), monkeypatch)  # a third-party model: from the zoo
    cfg = load_sweep(path)
    assert cfg.methods and cfg.n_trials >= 1
