"""The compression history of a model: every shape change as a plain record, replayable on a fresh model.

Records are dicts of plain types, e.g. ``{"kind": "prune", "module": NAME, "idxs": [...]}`` (remove output
channels ``idxs`` of layer ``NAME`` and everything coupled to them). Other surgeries (layer factorization)
add their own kinds to the same list through :func:`register_replay`.

The history lives in a parameter-free submodule, so it is part of the model's ``state_dict`` (as extra
state of plain types: ``torch.load(weights_only=True)`` reads it). With :func:`enable_history_restore`, a
fresh model built from the original class replays the history inside ``load_state_dict`` before any
weight is copied, so Lightning's ``trainer.fit(ckpt_path=...)`` and ``load_from_checkpoint`` restore a
compressed model without pickling modules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

__all__ = [
    "HISTORY_ATTRIBUTE",
    "append_history",
    "apply_history",
    "enable_history_restore",
    "get_history",
    "register_replay",
]

HISTORY_ATTRIBUTE = "compression_history"
_STATE_KEY = f"{HISTORY_ATTRIBUTE}._extra_state"
_REPLAY: dict[str, Callable[[nn.Module, dict[str, Any], Any], None]] = {}


class CompressionHistory(nn.Module):
    """Holds the records; saved and loaded as the module's extra state."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, Any]] = []

    def get_extra_state(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.records]

    def set_extra_state(self, state: Any) -> None:
        self.records = [dict(r) for r in state]

    def forward(self) -> None:  # pragma: no cover - never called
        raise RuntimeError("CompressionHistory holds records only")


def register_replay(kind: str, fn: Callable[[nn.Module, dict[str, Any], Any], None]) -> None:
    """Register how records of ``kind`` are replayed: ``fn(model, record, example_inputs)``."""
    _REPLAY[kind] = fn


def _holder(model: nn.Module, create: bool) -> CompressionHistory | None:
    holder = getattr(model, HISTORY_ATTRIBUTE, None)
    if isinstance(holder, CompressionHistory):
        return holder
    if not create:
        return None
    holder = CompressionHistory()
    model.add_module(HISTORY_ATTRIBUTE, holder)
    return holder


def get_history(model: nn.Module) -> list[dict[str, Any]]:
    """The records applied to ``model`` so far (a copy).

    Example:
        >>> get_history(nn.Linear(2, 2))
        []
    """
    holder = _holder(model, create=False)
    return holder.get_extra_state() if holder is not None else []


def append_history(model: nn.Module, records: Sequence[dict[str, Any]]) -> None:
    """Record surgeries that were applied to ``model``."""
    holder = _holder(model, create=True)
    assert holder is not None
    holder.records.extend(dict(r) for r in records)


def apply_history(model: nn.Module, history: Sequence[dict[str, Any]], example_inputs: Any) -> int:
    """Replay the records of ``history`` that ``model`` has not had yet; returns how many were applied.

    ``model`` must be the architecture the history started from (or have a prefix of it applied already).
    Only shapes change: load the weights afterwards.
    """
    done = get_history(model)
    if [dict(r) for r in history[: len(done)]] != done:
        raise ValueError("the model's compression history is not a prefix of the one to apply")
    todo = [dict(r) for r in history[len(done) :]]
    for record in todo:
        kind = record.get("kind")
        if kind not in _REPLAY:
            raise ValueError(f"unknown compression record kind {kind!r}; known: {sorted(_REPLAY)}")
        _REPLAY[kind](model, record, example_inputs)
        append_history(model, [record])
    return len(todo)


def enable_history_restore(model: nn.Module, example_inputs: Any) -> None:
    """Make ``model.load_state_dict`` replay a compression history found in the state dict first.

    Idempotent. ``example_inputs`` (or a zero-argument callable returning them) is used for tracing.

    Example:
        >>> import torch
        >>> from lightning_compress.models import LeNet300100
        >>> from lightning_compress.surgery import find_groups, remove_groups
        >>> x = torch.zeros(1, 1, 28, 28)
        >>> small = LeNet300100(hidden=(8, 4))
        >>> _ = remove_groups(small, find_groups(small, x), {"1": [1, 2, 3]}, x)
        >>> fresh = LeNet300100(hidden=(8, 4)); enable_history_restore(fresh, x)
        >>> fresh.load_state_dict(small.state_dict()); fresh[1].out_features
        <All keys matched successfully>
        5
    """
    if getattr(model, "_compression_restore_enabled", False):
        return

    def hook(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        records = state_dict.get(prefix + _STATE_KEY)
        if records:
            inputs = example_inputs() if callable(example_inputs) else example_inputs
            apply_history(module, records, inputs)
        elif _holder(module, create=False) is None and prefix + _STATE_KEY in state_dict:
            _holder(module, create=True)

    model.register_load_state_dict_pre_hook(hook)
    object.__setattr__(model, "_compression_restore_enabled", True)
