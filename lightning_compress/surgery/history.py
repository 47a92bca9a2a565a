"""The compression history of a model: every shape change as a plain record, replayable on a fresh model.

Records are dicts of plain types, e.g. ``{"kind": "prune", "module": NAME, "idxs": [...]}`` (remove output
channels ``idxs`` of layer ``NAME`` and everything coupled to them). Other surgeries (layer factorization)
add their own kinds to the same list through :func:`register_replay`.

The history lives in a ``uint8`` buffer (canonical JSON) named ``compression_history``, so it is part of the
model's ``state_dict`` and ``torch.load(weights_only=True)`` reads it; the forward pass never sees it.
With :func:`enable_history_restore`, a fresh model built from the original class replays the history inside
``load_state_dict`` before any weight is copied, so Lightning's ``trainer.fit(ckpt_path=...)`` and
``load_from_checkpoint`` restore a compressed model without pickling modules.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "HISTORY_ATTRIBUTE",
    "append_history",
    "apply_history",
    "enable_history_restore",
    "get_history",
    "history_version",
    "register_replay",
]

HISTORY_ATTRIBUTE = "compression_history"
_VERSION = "_compression_history_version"
_REPLAY: dict[str, Callable[[nn.Module, dict[str, Any], Any], None]] = {}


def _encode(records: Sequence[dict[str, Any]]) -> torch.Tensor:
    text = json.dumps([dict(r) for r in records], sort_keys=True, separators=(",", ":"))
    return torch.tensor(list(text.encode()), dtype=torch.uint8)


def _decode(buffer: torch.Tensor) -> list[dict[str, Any]]:
    return list(json.loads(bytes(buffer.cpu().tolist()).decode())) if buffer.numel() else []


def register_replay(kind: str, fn: Callable[[nn.Module, dict[str, Any], Any], None]) -> None:
    """Register how records of ``kind`` are replayed: ``fn(model, record, example_inputs)``."""
    _REPLAY[kind] = fn


def get_history(model: nn.Module) -> list[dict[str, Any]]:
    """The records applied to ``model`` so far (a copy).

    Example:
        >>> get_history(nn.Linear(2, 2))
        []
    """
    buffer = model._buffers.get(HISTORY_ATTRIBUTE)
    return _decode(buffer) if buffer is not None else []


def append_history(model: nn.Module, records: Sequence[dict[str, Any]]) -> None:
    """Record surgeries that were applied to ``model``."""
    model.register_buffer(HISTORY_ATTRIBUTE, _encode([*get_history(model), *records]))
    model.__dict__[_VERSION] = history_version(model) + 1


def history_version(model: nn.Module) -> int:
    """A counter that changes whenever ``model``'s shape changes (cheap: no decoding), for caches."""
    return int(model.__dict__.get(_VERSION, 0))


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
        records = _decode(saved)
        if records:
            inputs = example_inputs() if callable(example_inputs) else example_inputs
            apply_history(module, records, inputs)
        elif HISTORY_ATTRIBUTE not in module._buffers:
            append_history(module, [])

    model.register_load_state_dict_pre_hook(hook)
    object.__setattr__(model, "_compression_restore_enabled", True)
