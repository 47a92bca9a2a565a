"""Coordinate a sweep: create the study once, start local workers, show progress, summarize."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from tqdm.auto import tqdm

from lightning_compress.sweep.compare import compare_methods, format_methods
from lightning_compress.sweep.faults import WriteFailed, write_failure
from lightning_compress.sweep.launch import Workers, start_method, threads_for
from lightning_compress.sweep.load import load_sweep, make_sampler, method_turns, sweep_paths
from lightning_compress.sweep.report import format_table, pareto_rows, trial_rows, write_plots
from lightning_compress.sweep.schema import SweepConfig
from lightning_compress.sweep.space import METHOD_PARAM
from lightning_compress.sweep.storage import (
    create_or_load_study,
    default_storage_url,
    load_existing_study,
    open_storage,
    redact,
)
from lightning_compress.sweep.tracking import log_summary, wandb_enabled
from lightning_compress.sweep.worker import EXIT_INTERRUPTED, count_done

__all__ = ["run_sweep", "summarize"]


class _Progress:
    """A tqdm bar on a terminal; in a log (not a TTY), one plain line each time the counts change."""

    def __init__(self, total: int, initial: int, name: str) -> None:
        self.interactive = sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, desc=name, unit="trial") if self.interactive else None
        self.total, self.name, self.last = total, name, (initial, -1, -1)

    def show(self, done: int, failed: int = 0, running: int = 0) -> None:
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix(failed=failed, running=running)
        elif (done, failed, running) != self.last and (done, failed) != self.last[:2]:
            print(
                f"{self.name}: {done}/{self.total} trials done, {failed} failed, {running} running",
                flush=True,
            )
        self.last = (done, failed, running)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


class _Warm(threading.Thread):
    """Imports the report's W&B and plotting modules in the background, once."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.started = False

    def start(self) -> None:
        if not self.started:
            self.started = True
            super().start()

    def run(self) -> None:
        with contextlib.suppress(Exception):
            import matplotlib.pyplot  # noqa: F401

            self.load_wandb()

    @staticmethod
    def load_wandb() -> None:
        """Import W&B and what every ``wandb.init`` imports (starts no thread or process)."""
        if importlib.util.find_spec("wandb") is not None:
            import wandb
            import wandb.sdk.launch.inputs.internal  # noqa: F401


def run_sweep(
    sweep: str,
    overrides: list[str],
    *,
    workers: int = 1,
    storage: str | None = None,
    n_trials: int | None = None,
    worker_offset: int = 0,
    threads_per_worker: int | None = None,
) -> dict[str, Any]:
    """Run (or resume, or join) the sweep; returns the summary written to ``summary.json``.

    The study is created here, once, before any worker starts. Re-running the same command resumes:
    the budget counts trials already completed. Ctrl-C stops every worker after its current batch; the
    interrupted trials are queued again for the next run. The first write that fails in a worker (a full
    disk) stops every worker and raises :class:`~lightning_compress.sweep.faults.WriteFailed` with its
    line; every trial completed before it stays in the study.

    Example:
        >>> run_sweep("sweeps/no_such_sweep.yaml", [])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lightning_compress.config.errors.ConfigError: config: file not found: 'sweeps/no_such_sweep.yaml' (shipped...
    """
    if start_method() == "fork":  # a child forked after torch ran a parallel op hangs in its thread pool:
        torch.set_num_threads(1)  # checking the sweep builds the model here; the workers set their own
    cfg = load_sweep(sweep, overrides)
    _, sweep_dir = sweep_paths(cfg, sweep)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    url = storage or cfg.storage or default_storage_url(sweep_dir)
    budget = n_trials or cfg.n_trials
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the line below says what Optuna's would
    study = create_or_load_study(open_storage(url), cfg.name, make_sampler(cfg))
    with warnings.catch_warnings():  # experimental in Optuna since 3.2, and what the dashboard shows
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([cfg.objectives.size.value, "val_acc"])
    turns = method_turns(cfg)
    if turns and not study.get_trials(deepcopy=False):  # a new study: each method's trials, in turns
        for method in turns:
            study.enqueue_trial({METHOD_PARAM: method}, skip_if_exists=False)
    launch = Workers(workers, threads=threads_for(workers, threads_per_worker), offset=worker_offset)
    print(
        f"study {cfg.name!r} in {redact(url)}: {count_done(study)}/{budget} trials done, "
        f"{launch.count} worker(s)"
    )
    if launch.method == "fork" and wandb_enabled(cfg):
        _Warm.load_wandb()  # once, shared by the forked workers and the report
    procs = launch.start(sweep, overrides, url, n_trials=budget)
    interrupted = False

    def _interrupt(*_: Any) -> None:
        nonlocal interrupted
        interrupted = True  # workers got the same SIGINT from the terminal; forward it if they did not
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGINT, _interrupt)
    warm = _Warm()
    broken: list[str] = []  # failed writes the workers reported
    try:
        with _Progress(budget, min(count_done(study), budget), cfg.name) as bar:
            while any(p.poll() is None for p in procs):
                time.sleep(0.25)
                broken += launch.failures()
                if broken:  # a write failed (a full disk): stop every worker, read and write nothing more
                    _interrupt()
                    interrupted = False
                    break
                done = min(count_done(study), budget)
                failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
                running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
                bar.show(done, failed=failed, running=running)
                if done + running >= budget and running < len(procs):
                    warm.start()  # a core is free until the end: load what the report needs
                if done >= budget and not running:
                    break  # every trial is in: report while the workers shut down
            if not broken:
                bar.show(min(count_done(study), budget))
        broken += launch.failures()
        summary = summarize(sweep, overrides, storage=url) if not (interrupted or broken) else None
        for p in procs:
            p.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    broken += launch.failures()
    if broken:
        raise WriteFailed(broken[0])
    codes = [p.wait() for p in procs]
    for index, code in enumerate(codes):
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            print(f"worker {worker_offset + index} was killed by {name}", file=sys.stderr)
    outcome = {
        "interrupted": interrupted or EXIT_INTERRUPTED in codes,
        "worker_exit_codes": codes,
        "workers_killed": sum(code < 0 for code in codes),
        "budget": budget,
        "budget_met": count_done(study) >= budget,
    }
    if summary is None:
        summary = summarize(sweep, overrides, storage=url, outcome=outcome)
    else:
        summary.update(outcome)
        _write_summary(sweep_paths(cfg, sweep)[1], summary)
    if outcome["interrupted"]:
        print(f"interrupted: {count_done(study)}/{budget} trials done; run the same command again to resume")
    elif not outcome["budget_met"]:
        print(f"the sweep stopped with {count_done(study)}/{budget} trials done: see the failures above")
    return summary


def summarize(
    sweep: str, overrides: list[str], *, storage: str | None = None, outcome: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Print the Pareto table, write ``pareto.png``, ``pareto.html`` and ``summary.json``, log W&B summary.

    ``outcome`` (how the workers ended, whether the budget was met) is written into ``summary.json``.

    Example:
        >>> import tempfile  # a storage that holds no such study yet
        >>> summarize("sweeps/lenet300_fmnist.yaml", [f"storage={tempfile.mkdtemp()}/journal.log"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lightning_compress.config.errors.ConfigError: storage: .../journal.log does not exist: no sweep of that name...
    """
    cfg = load_sweep(sweep, overrides)
    _, sweep_dir = sweep_paths(cfg, sweep)
    try:
        return _summarize(cfg, sweep_dir, storage, outcome)
    except OSError as err:  # a full disk while writing the plots or the summary: name the folder
        failure = write_failure(err)
        if failure is None or failure.filename:
            raise
        raise OSError(failure.errno, failure.strerror, str(sweep_dir)) from None


def _summarize(
    cfg: SweepConfig, sweep_dir: Path, storage: str | None, outcome: dict[str, Any] | None
) -> dict[str, Any]:
    url = storage or cfg.storage or default_storage_url(sweep_dir)
    study = load_existing_study(open_storage(url, create=False), cfg.name, redact(url))
    size_name = cfg.objectives.size.value
    states = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    summary: dict[str, Any] = {"study": cfg.name, "storage": redact(url), "trials": states, **(outcome or {})}
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    for t in failed:
        print(f"trial {t.number} failed: {t.user_attrs.get('fail_reason', 'unknown reason')}")
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        pruned = states.get("pruned", 0)
        why = f": {pruned} pruned by the early-stop rule (early_stop in the sweep file)" if pruned else ""
        print(f"no completed trial yet{why}")
        _write_summary(sweep_dir, summary)
        return summary
    rows, hv = pareto_rows(study)
    if not rows:
        floor = cfg.objectives.accuracy_floor
        print(f"no completed trial reaches the accuracy floor ({floor}): the front is empty")
    png, html = write_plots(study, sweep_dir, size_name, cfg.objectives.accuracy_floor)
    print(format_table(rows, hv, size_name))
    methods = compare_methods(study, size_name)
    if len(methods.fronts) > 2:  # several methods and their union
        print(format_methods(methods))
    print(f"plot: {png}\ninteractive: {html}")
    summary.update({"pareto": rows, "hypervolume": hv, "png": str(png), "html": str(html)})
    summary["methods"] = methods.as_dict()
    wandb_dir = log_summary(cfg, sweep_dir, trial_rows(study), hv, methods)
    if wandb_dir:
        summary["wandb_summary_run"] = wandb_dir
    _write_summary(sweep_dir, summary)
    return summary


def _write_summary(sweep_dir: Path, summary: dict[str, Any]) -> None:
    path = sweep_dir / "summary.json"
    tmp = path.with_name(".summary.json.part")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    os.replace(tmp, path)
