"""Replay a compression history on a fresh model, by hand or inside ``load_state_dict``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lightning_compress.surgery.base.example import INPUTS_ATTRIBUTE, example_from_spec
from lightning_compress.surgery.base.records import (
    HISTORY_ATTRIBUTE,
    append_history,
    decode_history,
    get_history,
)
from lightning_compress.surgery.history.registry import RECORD_KINDS

__all__ = ["apply_history", "enable_history_restore", "load_compressed"]


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


def _restore_inputs(example_inputs: Any, saved: Any, device: Any) -> Any:
    if example_inputs is not None:
        try:
            return example_inputs() if callable(example_inputs) else example_inputs
        except ValueError:  # no example at hand: the one kept in the state dict
            if saved is None:
                raise
    if saved is None:
        raise ValueError(
            "the state dict holds a compression history but no example input to replay it with: give "
            "example_inputs (or set the module's example_input_array)"
        )
    return example_from_spec(saved, device)


def enable_history_restore(model: nn.Module, example_inputs: Any = None) -> None:
    """Make ``model.load_state_dict`` replay a compression history found in the state dict first.

    Idempotent. ``example_inputs`` (or a zero-argument callable returning them) is used for tracing; without
    it (or when the callable raises ``ValueError``), the example input kept in the state dict is.

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
        saved_inputs = state_dict.get(prefix + INPUTS_ATTRIBUTE)
        if saved_inputs is not None and INPUTS_ATTRIBUTE not in module._buffers:
            module.register_buffer(INPUTS_ATTRIBUTE, saved_inputs.clone())
        saved = state_dict.get(prefix + HISTORY_ATTRIBUTE)
        if saved is None:
            return
        records = decode_history(saved)
        if records:
            device = next((p.device for p in module.parameters()), "cpu")
            apply_history(module, records, _restore_inputs(example_inputs, saved_inputs, device))
        elif HISTORY_ATTRIBUTE not in module._buffers:
            append_history(module, [])

    model.register_load_state_dict_pre_hook(hook)
    object.__setattr__(model, "_compression_restore_enabled", True)


def load_compressed(
    module: nn.Module, checkpoint: Any, *, prefix: str = "", strict: bool = True, example_inputs: Any = None
) -> nn.Module:
    """Load a compressed checkpoint into a freshly built ``module``: replay its history, then its weights.

    ``checkpoint`` is a path, a Lightning checkpoint dict or a state dict. With ``prefix`` (e.g. ``"net."``)
    only that submodule's part is loaded into ``module``, a plain ``nn.Module``: the history records of
    layers under the prefix are replayed on it. Returns ``module``.

    Example:
        >>> from lightning_compress.surgery import find_groups, remove_groups
        >>> x = torch.zeros(1, 4)
        >>> def mlp(): return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> from collections import OrderedDict
        >>> trained = nn.Sequential(OrderedDict(net=mlp()))  # like a LightningModule holding .net
        >>> _ = remove_groups(trained, find_groups(trained, x), {"net.0": [0, 1, 2]}, x)
        >>> inner = load_compressed(mlp(), trained.state_dict(), prefix="net.", example_inputs=x)
        >>> inner[0].out_features
        5
    """
    if not isinstance(checkpoint, dict):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = dict(checkpoint.get("state_dict", checkpoint))
    if prefix:
        history = decode_history(state[HISTORY_ATTRIBUTE]) if HISTORY_ATTRIBUTE in state else []
        outside = [r for r in history if not str(r.get("module", "")).startswith(prefix)]
        if outside:
            raise ValueError(
                f"the history changes layers outside {prefix!r} (e.g. {outside[0].get('module')!r}): load "
                "the whole module instead"
            )
        inputs = state.get(INPUTS_ATTRIBUTE)
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        rebased = [{**r, "module": str(r["module"])[len(prefix) :]} for r in history]
        scratch = nn.Module()
        append_history(scratch, rebased)
        state[HISTORY_ATTRIBUTE] = scratch.compression_history
        if inputs is not None:
            state[INPUTS_ATTRIBUTE] = inputs
    enable_history_restore(module, example_inputs)
    module.load_state_dict(state, strict=strict)
    return module
