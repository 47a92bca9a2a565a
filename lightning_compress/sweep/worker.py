"""A sweep worker: asks the shared study for trials and runs them until the budget is met.

Run by ``lightning-compress sweep`` (``--workers N`` starts N of them); on another machine, the same
command with the same ``--storage`` joins the study. The storage URL is read from the environment
(``LIGHTNING_COMPRESS_STORAGE``) so a database password never shows in a process list.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
import warnings
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from lightning_compress._logging import hide_lightning_tips
from lightning_compress.sweep.faults import describe, watch_log_writes, write_failure
from lightning_compress.sweep.signals import stop_on_signals, stop_with_parent
from lightning_compress.sweep.trial import Interrupted, StopFlag, run_trial, trial_dir

__all__ = ["count_done", "reclaim_stale_trials", "run_worker", "stop_on_signals", "work"]

EXIT_INTERRUPTED = 130
EXIT_WRITE_FAILED = 2
_DONE = (TrialState.COMPLETE, TrialState.PRUNED)


def _trained(study: optuna.Study, states: tuple[TrialState, ...]) -> list[FrozenTrial]:
    """The trials in ``states`` that trained (a size taken from a trained model, ``size_of``, is not one)."""
    return [t for t in study.get_trials(deepcopy=False, states=states) if "size_of" not in t.user_attrs]


def count_done(study: optuna.Study) -> int:
    """Trials that count towards the budget: completed and pruned ones (sizes taken from them do not)."""
    return len(_trained(study, _DONE))


def _heartbeat(trial: FrozenTrial) -> float:
    beat = trial.user_attrs.get("heartbeat")
    if isinstance(beat, (int, float)):
        return float(beat)
    return trial.datetime_start.timestamp() if trial.datetime_start else time.time()


def reclaim_stale_trials(study: optuna.Study, storage: BaseStorage, stale_after: float) -> list[int]:
    """Fail every running trial whose worker stopped beating, and queue its parameters again.

    Returns the numbers of the trials reclaimed by this call (another worker may win the race for one).
    """
    now = time.time()
    study_id = storage.get_study_id_from_name(study.study_name)
    reclaimed = []
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if now - _heartbeat(frozen) <= stale_after:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        try:
            storage.set_trial_user_attr(
                trial_id, "fail_reason", f"no heartbeat for {now - _heartbeat(frozen):.0f} s"
            )
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # another worker reclaimed it first, or it just finished
        study.enqueue_trial(frozen.params, user_attrs={"retry_of": frozen.number}, skip_if_exists=False)
        reclaimed.append(frozen.number)
    return reclaimed


class _Failed:
    """The first failed write seen in this worker (by a thread or a log handler); it stops the worker."""

    def __init__(self, stop: StopFlag) -> None:
        self.stop = stop
        self.error: OSError | None = None

    def __call__(self, error: OSError) -> None:
        if self.error is None:
            self.error = error
        self.stop.set()


class _Beat(threading.Thread):
    def __init__(self, trial: optuna.Trial, interval: float, failed: _Failed) -> None:
        super().__init__(daemon=True)
        self.trial = trial
        self.interval = interval
        self.failed = failed
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                self.trial.set_user_attr("heartbeat", time.time())
            except OSError as err:
                failure = write_failure(err)
                if failure is None:
                    raise
                self.failed(failure)
                return


def _work_left(study: optuna.Study, n_trials: int) -> bool:
    """Whether a new (or queued) trial is needed: done and running trials do not fill the budget yet."""
    busy = len(_trained(study, (*_DONE, TrialState.RUNNING)))
    return busy < n_trials or bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def _slot_free(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """Whether ``trial`` fits the budget: trials numbered before it that are done or running come first."""
    ahead = [t for t in _trained(study, (*_DONE, TrialState.RUNNING)) if t.number < trial.number]
    return len(ahead) < n_trials


def work(
    sweep_path: str,
    overrides: list[str],
    storage_url: str,
    n_trials: int,
    worker_index: int,
    report: Any = None,
) -> int:
    """Run trials until ``n_trials`` are done, the worker is interrupted, or failures pile up.

    The first failed write (journal, checkpoint, log file: a full disk) stops the worker with exit code
    2; its one-line description goes to ``report`` (a callable; stderr when ``None``). Its trial is failed
    and queued again where the storage still takes the write, else left for the next run to reclaim.
    """
    stop = stop_on_signals()
    failed = _Failed(stop)
    watch_log_writes(failed)
    try:
        return _work(sweep_path, overrides, storage_url, n_trials, worker_index, stop, failed)
    except Exception as err:
        failure = write_failure(err) or failed.error
        if failure is None:
            raise
    line = describe(failure)
    if report is not None:
        report(line)
    else:
        print(f"lightning-compress: error: {line}", file=sys.stderr)
    return EXIT_WRITE_FAILED


def _work(
    sweep_path: str,
    overrides: list[str],
    storage_url: str,
    n_trials: int,
    worker_index: int,
    stop: StopFlag,
    failed: _Failed,
) -> int:
    from lightning_compress.sweep.load import load_sweep, make_sampler, method_turns, sweep_paths
    from lightning_compress.sweep.space import METHOD_PARAM
    from lightning_compress.sweep.storage import open_storage

    cfg = load_sweep(sweep_path, overrides)
    base, sweep_dir = sweep_paths(cfg, sweep_path)
    storage = open_storage(storage_url)
    # seeded by the study's progress too: a resumed or joining worker does not replay earlier points
    started = len(optuna.load_study(study_name=cfg.name, storage=storage).get_trials(deepcopy=False))
    sampler = make_sampler(cfg, worker_index, started)
    study = optuna.load_study(study_name=cfg.name, storage=storage, sampler=sampler)
    stop_with_parent(stop)
    failures = 0
    while not stop.is_set():
        reclaim_stale_trials(study, storage, cfg.stale_after_seconds)
        if count_done(study) >= n_trials:
            return 0
        if failures > max(3, n_trials):
            print(f"worker {worker_index}: {failures} trials failed, stopping", file=sys.stderr)
            return 1
        if not _work_left(study, n_trials):
            # the rest of the budget is running elsewhere: wait, in case a worker dies and its trial comes back
            stop.wait(min(1.0, cfg.heartbeat_seconds))
            continue
        trial = study.ask()
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("heartbeat", time.time())
        if not _slot_free(study, trial, n_trials):  # lost a race for the last slot
            trial.set_user_attr("fail_reason", "budget already met by other workers")
            study.tell(trial, state=TrialState.FAIL)
            continue
        beat = _Beat(trial, cfg.heartbeat_seconds, failed)
        beat.start()
        try:
            values = run_trial(trial, cfg, base, sweep_dir, stop)
            if failed.error is not None:  # a log file failed while the trial ran: its result is not saved
                raise failed.error
            study.tell(trial, values)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except (Interrupted, SystemExit) as err:  # Lightning ends fit with SystemExit on SIGTERM
            if failed.error is not None:
                _give_back(study, trial, failed.error)
                raise failed.error from None
            reason = "interrupted" if isinstance(err, Interrupted) else "terminated (SIGTERM)"
            trial.set_user_attr("fail_reason", f"{reason}; queued again")
            study.tell(trial, state=TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
            if isinstance(err, SystemExit):
                return EXIT_INTERRUPTED
        except Exception as err:  # a failing trial must not end the sweep; a failed write does
            failure = write_failure(err)
            if failure is not None:
                if failure.filename is None:  # a buffered file's flush: name the trial's folder
                    failure.filename = str(trial_dir(sweep_dir, trial.number))
                _give_back(study, trial, failure)
                raise failure from None
            trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}"[:500])
            study.tell(trial, state=TrialState.FAIL)
            failures += 1
            if method_turns(cfg):  # each method's budget stays its own: its next trial takes the turn
                study.enqueue_trial({METHOD_PARAM: trial.params[METHOD_PARAM]}, skip_if_exists=False)
        finally:
            beat.done.set()
    if failed.error is not None:
        raise failed.error
    return EXIT_INTERRUPTED


def _give_back(study: optuna.Study, trial: optuna.Trial, error: OSError | None) -> None:
    """Fail the trial and queue it again, if the storage still takes writes (a database on another disk
    does; a full journal's append is cut back whole, so trying costs nothing)."""
    with contextlib.suppress(Exception):
        trial.set_user_attr("fail_reason", f"write failed ({error}); queued again"[:500])
        study.tell(trial, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)


def _quiet(threads: int) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # the coordinator's progress bar and summary are the output; per-trial Lightning chatter is noise
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")
    hide_lightning_tips()


def run_worker(order: dict[str, Any], threads: int, messages: Any = None) -> None:
    """A worker started by the coordinator (:class:`~lightning_compress.sweep.launch.Workers`), forked or
    spawned; exits with :func:`work`'s code. A failed write's line goes to the coordinator through
    ``messages`` (a queue), which shows it once."""
    _quiet(threads)
    code = work(
        order["sweep"],
        order["overrides"],
        order["storage"],
        order["n_trials"],
        order["worker_index"],
        report=messages.put if messages is not None else None,
    )
    wandb = sys.modules.get("wandb")
    if wandb is not None:  # a multiprocessing child skips atexit hooks: stop its W&B service here
        with contextlib.suppress(Exception):
            wandb.teardown()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)
