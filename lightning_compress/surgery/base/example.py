"""The example input a model is traced with, taken from a batch and kept in the model's state dict.

Tracing (to find neuron groups, to replay a history) needs an input of the right shape. A model's
``example_input_array`` gives one; when it is missing, the input of the first training batch is used, and
its shape and dtype are kept in a ``uint8`` buffer named ``compression_inputs`` (JSON) so a compressed
checkpoint can be replayed later without any example at hand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = [
    "BATCH_INPUT_KEYS",
    "INPUTS_ATTRIBUTE",
    "batch_input",
    "example_from_spec",
    "model_input",
    "store_example",
]

INPUTS_ATTRIBUTE = "compression_inputs"
BATCH_INPUT_KEYS = ("input", "inputs", "x", "image", "images", "pixel_values", "input_ids")
"""Keys looked up, in this order, when a batch is a dict (give ``key`` for any other)."""


def model_input(batch: Any, key: str | None = None) -> torch.Tensor:
    """The model input of ``batch``: a tensor, the first item of a tuple or list, or a dict's ``key`` (by
    default the first of :data:`BATCH_INPUT_KEYS` it has). The one rule every reader of batches uses
    (tracing, calibration, :func:`~lightning_compress.surgery.compress_low_rank`).

    Raises:
        ValueError: when no input can be found in the batch.

    Example:
        >>> x, y = torch.zeros(8, 3), torch.zeros(8)
        >>> model_input((x, y)).shape, model_input({"pixel_values": x, "labels": y}).shape
        (torch.Size([8, 3]), torch.Size([8, 3]))
    """
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch:
        return model_input(batch[0])
    if isinstance(batch, Mapping):
        keys = [key] if key is not None else [k for k in BATCH_INPUT_KEYS if k in batch]
        if keys and keys[0] in batch:
            return model_input(batch[keys[0]])
    raise ValueError(
        f"cannot find the model input in a batch of type {type(batch).__name__}: expected a tensor, a "
        f"tuple/list whose first item is the input, or a dict with one of {list(BATCH_INPUT_KEYS)}; set "
        "example_input_array on the module (or pass example_input= to the callback)"
    )


def batch_input(batch: Any, key: str | None = None) -> torch.Tensor:
    """:func:`model_input`, cut to one sample (an example input to trace with).

    Example:
        >>> x, y = torch.zeros(8, 3), torch.zeros(8)
        >>> batch_input((x, y)).shape, batch_input({"image": x, "label": y}).shape
        (torch.Size([1, 3]), torch.Size([1, 3]))
    """
    return model_input(batch, key)[:1].detach().clone()


def _spec(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return {"shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch.")}
    if isinstance(x, (tuple, list)):
        return {"items": [_spec(t) for t in x]}
    if isinstance(x, Mapping):
        return {"keys": {str(k): _spec(v) for k, v in x.items()}}
    raise ValueError(f"an example input must be tensors (in tuples, lists or dicts), got {type(x).__name__}")


def store_example(model: nn.Module, example: Any) -> None:
    """Keep the shape and dtype of ``example`` in ``model``'s state dict (a ``compression_inputs`` buffer).

    Example:
        >>> model = nn.Linear(3, 2); store_example(model, torch.zeros(1, 3))
        >>> example_from_spec(model.state_dict()["compression_inputs"]).shape
        torch.Size([1, 3])
    """
    text = json.dumps(_spec(example), sort_keys=True, separators=(",", ":"))
    model.register_buffer(INPUTS_ATTRIBUTE, torch.tensor(list(text.encode()), dtype=torch.uint8))


def _build(spec: dict[str, Any], device: torch.device | str) -> Any:
    if "items" in spec:
        return tuple(_build(s, device) for s in spec["items"])
    if "keys" in spec:
        return {k: _build(s, device) for k, s in spec["keys"].items()}
    return torch.zeros(spec["shape"], dtype=getattr(torch, spec["dtype"]), device=device)


def example_from_spec(buffer: torch.Tensor, device: torch.device | str = "cpu") -> Any:
    """Zeros of the shapes and dtypes a ``compression_inputs`` buffer holds (enough to trace a model).

    Example:
        >>> model = nn.Linear(3, 2); store_example(model, (torch.zeros(1, 3), torch.zeros(1, dtype=torch.long)))
        >>> [t.dtype for t in example_from_spec(model.compression_inputs)]
        [torch.float32, torch.int64]
    """
    return _build(json.loads(bytes(buffer.cpu().tolist()).decode()), device)
