"""The compression history of a model: every shape change as a plain record, replayable on a fresh model.

Records are dicts of plain types, e.g. ``{"kind": "prune", "module": NAME, "idxs": [...]}`` (remove output
channels ``idxs`` of layer ``NAME`` and everything coupled to them). Every kind is replayed by the function
:data:`~lightning_compress.surgery.registry.RECORD_KINDS` names for it (:mod:`lightning_compress.surgery.history.replay`).

The history lives in a ``uint8`` buffer (canonical JSON) named ``compression_history``, so it is part of the
model's ``state_dict`` and ``torch.load(weights_only=True)`` reads it; the forward pass never sees it.
With :func:`~lightning_compress.surgery.enable_history_restore`, a fresh model built from the original
class replays the history inside ``load_state_dict`` before any weight is copied, so Lightning's
``trainer.fit(ckpt_path=...)`` and ``load_from_checkpoint`` restore a compressed model without pickling
modules.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["HISTORY_ATTRIBUTE", "append_history", "decode_history", "get_history", "history_version"]

HISTORY_ATTRIBUTE = "compression_history"
_VERSION = "_compression_history_version"


def _encode(records: Sequence[dict[str, Any]]) -> torch.Tensor:
    text = json.dumps([dict(r) for r in records], sort_keys=True, separators=(",", ":"))
    return torch.tensor(list(text.encode()), dtype=torch.uint8)


def decode_history(buffer: torch.Tensor) -> list[dict[str, Any]]:
    """The records held in a ``compression_history`` buffer (e.g. from a state dict).

    Example:
        >>> model = nn.Linear(2, 2); append_history(model, [{"kind": "prune", "module": "", "idxs": [0]}])
        >>> decode_history(model.state_dict()["compression_history"])
        [{'idxs': [0], 'kind': 'prune', 'module': ''}]
    """
    return list(json.loads(bytes(buffer.cpu().tolist()).decode())) if buffer.numel() else []


def get_history(model: nn.Module) -> list[dict[str, Any]]:
    """The records applied to ``model`` so far (a copy).

    Example:
        >>> get_history(nn.Linear(2, 2))
        []
    """
    buffer = model._buffers.get(HISTORY_ATTRIBUTE)
    return decode_history(buffer) if buffer is not None else []


def append_history(model: nn.Module, records: Sequence[dict[str, Any]]) -> None:
    """Record surgeries that were applied to ``model`` (the surgery functions call this for you).

    Example:
        >>> model = nn.Linear(2, 2)
        >>> append_history(model, [{"kind": "prune", "module": "", "idxs": [1]}]); len(get_history(model))
        1
    """
    model.register_buffer(HISTORY_ATTRIBUTE, _encode([*get_history(model), *records]))
    model.__dict__[_VERSION] = history_version(model) + 1


def history_version(model: nn.Module) -> int:
    """A counter that changes whenever ``model``'s shape changes (cheap: no decoding), for caches.

    Example:
        >>> model = nn.Linear(2, 2); before = history_version(model)
        >>> append_history(model, []); history_version(model) > before
        True
    """
    return int(model.__dict__.get(_VERSION, 0))
