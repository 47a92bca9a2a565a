"""Replay a compression history on a fresh model, by hand or inside ``load_state_dict``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from lightning_compress.surgery.history import (
    HISTORY_ATTRIBUTE,
    append_history,
    decode_history,
    get_history,
)
from lightning_compress.surgery.registry import RECORD_KINDS

__all__ = ["apply_history", "enable_history_restore"]


def apply_history(model: nn.Module, history: Sequence[dict[str, Any]], example_inputs: Any) -> int:
    """Replay the records of ``history`` that ``model`` has not had yet; returns how many were applied.

    ``model`` must be the architecture the history started from (or have a prefix of it applied already).
    Only shapes change: load the weights afterwards.

    Example:
        >>> import torch
        >>> from lightning_compress.models import LeNet300100
        >>> fresh = LeNet300100(hidden=(8, 4))
        >>> apply_history(fresh, [{"kind": "prune", "module": "1", "idxs": [0, 1]}], torch.zeros(1, 784))
        1
        >>> fresh[1].out_features
        6
    """
    done = get_history(model)
    if [dict(r) for r in history[: len(done)]] != done:
        raise ValueError("the model's compression history is not a prefix of the one to apply")
    todo = [dict(r) for r in history[len(done) :]]
    for record in todo:
        kind = str(record.get("kind"))
        if kind not in RECORD_KINDS:
            raise ValueError(f"unknown compression record kind {kind!r}; known: {sorted(RECORD_KINDS)}")
        RECORD_KINDS[kind](model, record, example_inputs)
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
        saved = state_dict.get(prefix + HISTORY_ATTRIBUTE)
        if saved is None:
            return
        records = decode_history(saved)
        if records:
            inputs = example_inputs() if callable(example_inputs) else example_inputs
            apply_history(module, records, inputs)
        elif HISTORY_ATTRIBUTE not in module._buffers:
            append_history(module, [])

    model.register_load_state_dict_pre_hook(hook)
    object.__setattr__(model, "_compression_restore_enabled", True)
