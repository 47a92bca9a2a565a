"""Each trial's measured latency: its model exported as ``export`` writes it, timed on this worker, once per
architecture and host (the study's own trials are the cache)."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from lightning_compress.config import build_datamodule, build_module
from lightning_compress.config.schema import RunConfig
from lightning_compress.run.compress import load_checkpoint
from lightning_compress.surgery import INPUTS_ATTRIBUTE, example_from_spec, export_model
from lightning_compress.surgery.measure.latency import Latency, architecture_key, measure_latency
from lightning_compress.sweep.schema import LatencyConfig

__all__ = ["LATENCY_KEYS", "checkpoint_latency", "dense_latency"]

LATENCY_KEYS = ("latency", "latency_q25", "latency_q75", "latency_host", "latency_batch", "latency_threads")
_CACHE: dict[tuple[str, int, int], Latency] = {}


def _example(module: torch.nn.Module) -> torch.Tensor:
    x = getattr(module, "example_input_array", None)
    spec = module._buffers.get(INPUTS_ATTRIBUTE)
    if x is None and spec is not None:
        x = example_from_spec(spec)
    if not isinstance(x, torch.Tensor):
        raise ValueError("latency needs a single-tensor example input; the model has none")
    return x


def _cached(study: optuna.Study | None, key: str, cfg: LatencyConfig) -> dict[str, Any] | None:
    """The latency attributes of an earlier trial with this architecture, timed alike on this host."""
    host = socket.gethostname()
    hit = _CACHE.get((key, cfg.batch_size, cfg.threads))
    if hit is not None:
        return _attrs(hit, key)
    if study is None:
        return None
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        same = (
            a.get("architecture"),
            a.get("latency_host"),
            a.get("latency_batch"),
            a.get("latency_threads"),
        )
        if same == (key, host, cfg.batch_size, cfg.threads) and a.get("latency") is not None:
            return {k: a[k] for k in ("architecture", *LATENCY_KEYS) if k in a}
    return None


def _attrs(latency: Latency, key: str) -> dict[str, Any]:
    return {
        "architecture": key,
        "latency": latency.median_ms,
        "latency_q25": latency.q25_ms,
        "latency_q75": latency.q75_ms,
        "latency_host": socket.gethostname(),
        "latency_batch": latency.batch_size,
        "latency_threads": latency.threads,
    }


def _time(module: torch.nn.Module, normalize: Any, cfg: LatencyConfig, key: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="latency-") as folder:
        info = export_model(module, folder, _example(module), normalize=normalize)
        program = torch.export.load(info["program"]).module()
        example = torch.zeros(1, *info["input_shape"][1:], dtype=getattr(torch, info["input_dtype"]))
        latency = measure_latency(
            program, example, batch_size=cfg.batch_size, threads=cfg.threads, warmup=cfg.warmup, runs=cfg.runs
        )
    _CACHE[(key, cfg.batch_size, cfg.threads)] = latency
    return _attrs(latency, key)


def checkpoint_latency(
    checkpoint: str | Path, run_cfg: RunConfig, cfg: LatencyConfig, study: optuna.Study | None = None
) -> dict[str, Any]:
    """``architecture`` and the ``latency`` attributes (milliseconds a batch: median, quartiles; the host,
    batch size and threads) of a ``train`` checkpoint's model, exported with the run's input normalization."""
    module = load_checkpoint(checkpoint)
    key = architecture_key(module)
    hit = _cached(study, key, cfg)
    if hit is not None:
        return hit
    return _time(module, build_datamodule(run_cfg.data).normalization(), cfg, key)


def dense_latency(run_cfg: RunConfig, cfg: LatencyConfig, study: optuna.Study | None = None) -> float:
    """The median latency of the run config's dense (uncompressed) model, timed alike."""
    module = build_module(run_cfg)
    key = "dense-" + architecture_key(module)
    hit = _cached(study, key, cfg) or _time(module, build_datamodule(run_cfg.data).normalization(), cfg, key)
    return float(hit["latency"])
