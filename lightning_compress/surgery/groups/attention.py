"""Attention written by hand: heads of separate q/k/v Linears (or one packed ``qkv`` Linear) as groups.

A module is recognized as attention when it holds an integer head count (``num_heads``, ``n_heads``,
``n_head``, ``num_attention_heads`` or ``heads``) and Linear children named as one of the usual sets:
``q_proj``/``k_proj``/``v_proj`` + ``out_proj``/``o_proj``; ``query``/``key``/``value`` + ``out``/``proj``/``dense``;
``q``/``k``/``v`` + ``o``/``out``/``proj``; or a packed ``qkv`` (rows ordered q, k, v, each head by head)
+ ``proj``/``out``/``out_proj``. Hugging Face's BERT family keeps the output Linear beside the attention,
in ``<parent>.output.dense``: that is its output Linear when the module has none. Head ``h`` owns rows ``h*d : (h+1)*d`` of q, k and v and the same
columns of the output Linear. Removing heads lowers the head count attribute; the module's forward must
read it (``x.view(b, t, self.num_heads, self.head_dim)``); a cached inner width (``attn_dim``,
``all_head_size``, ``split_size``, ...: see ``_INNER_WIDTHS``) is lowered with it. A module whose forward
still fails after a trial removal is left out with a warning that quotes the failure. The q/k/v
channels of every recognized module are never grouped one by one (the attention scale and the head
reshape depend on the head size); the width they read is, unless the forward fails without it.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lightning_compress.surgery.groups.calls import Call, capture_calls
from lightning_compress.surgery.groups.core import NeuronGroups, Slice

__all__ = ["HandAttention", "find_hand_attention", "hand_head_groups", "prune_hand_heads"]

_COUNTS = ("num_heads", "n_heads", "n_head", "num_attention_heads", "heads")
_INNER_WIDTHS = ("all_head_size", "inner_dim", "inner", "attn_dim", "split_size")
_LAYOUTS = (
    (("q_proj", "k_proj", "v_proj"), ("out_proj", "o_proj")),
    (("query", "key", "value"), ("out", "proj", "dense")),
    (("q", "k", "v"), ("o", "out", "proj")),
    (("qkv",), ("proj", "out", "out_proj")),
)


@dataclass
class HandAttention:
    """Where a hand-written attention module keeps its heads.

    Attributes:
        name: Qualified module name.
        count: Name of its head-count attribute.
        inputs: Child names of the q, k, v Linears, or of the one packed ``qkv`` Linear.
        out: Child name of the output Linear.
        out_owner: Qualified name of the module whose child ``out`` is, when it is not this one.
        size: Name of its head-size attribute, for a module without a head count (Llama's ``head_dim``):
            the head count is then the output Linear's width over it.
    """

    name: str
    count: str
    inputs: tuple[str, ...]
    out: str
    out_owner: str | None = None
    size: str | None = None

    def path(self, child: str) -> str:
        """The qualified name of the q/k/v or output Linear ``child``."""
        owner = self.out_owner if child == self.out and self.out_owner is not None else self.name
        return f"{owner}.{child}"

    def heads(self, model: nn.Module) -> tuple[int, int]:
        """``(num_heads, head_dim)`` as the module's weights are now."""
        width = self.linear(model, self.out).in_features
        if self.size is not None:
            d = int(getattr(model.get_submodule(self.name), self.size))
            return width // d, d
        heads = int(getattr(model.get_submodule(self.name), self.count))
        return heads, width // heads

    def group(self, model: nn.Module) -> int:
        """How many query heads share one key/value head (grouped-query attention; 1 otherwise)."""
        heads, d = self.heads(model)
        return 1 if len(self.inputs) == 1 else heads // (self.linear(model, self.inputs[1]).out_features // d)

    def linear(self, model: nn.Module, child: str) -> nn.Linear:
        """The Linear ``child`` of this module in ``model``."""
        layer = model.get_submodule(self.path(child))
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"{self.path(child)} is not an nn.Linear")
        return layer


def _describe(name: str, module: nn.Module, model: nn.Module | None = None) -> HandAttention | None:
    if isinstance(module, nn.MultiheadAttention):
        return None
    count = next((c for c in _COUNTS if isinstance(getattr(module, c, None), int)), None)
    size = "head_dim" if count is None and isinstance(getattr(module, "head_dim", None), int) else None
    if count is None and size is None:
        return None
    children = dict(module.named_children())
    for inputs, outs in _LAYOUTS:
        out = next((o for o in outs if isinstance(children.get(o), nn.Linear)), None)
        if not all(isinstance(children.get(i), nn.Linear) for i in inputs) or (size and len(inputs) == 1):
            continue
        if out is not None:
            return HandAttention(name, count or "", inputs, out, size=size)
        owner = f"{name.rpartition('.')[0]}.output".lstrip(".")  # BERT: attention.self + attention.output
        if model is not None and isinstance(_child(model, f"{owner}.dense"), nn.Linear):
            return HandAttention(name, count or "", inputs, "dense", owner, size)
    return None


def _child(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def find_hand_attention(model: nn.Module) -> list[HandAttention]:
    """Every hand-written attention module of ``model`` (see the module docstring).

    Example:
        >>> class Attn(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.num_heads, self.qkv, self.proj = 2, nn.Linear(8, 24), nn.Linear(8, 8)
        >>> find_hand_attention(nn.Sequential(Attn()))
        [HandAttention(name='0', count='num_heads', inputs=('qkv',), out='proj', out_owner=None, size=None)]
    """
    return [a for n, m in model.named_modules() if (a := _describe(n, m, model)) is not None]


def _family(model: nn.Module, att: HandAttention) -> NeuronGroups:
    """One group per key/value head with its query heads (per head without grouped queries)."""
    heads, d = att.heads(model)
    g = att.group(model)
    slices = []
    for i, child in enumerate(att.inputs):
        layer = att.linear(model, child)
        head = (torch.arange(layer.out_features) % (heads * d)) // d
        unit = head // g if i == 0 or len(att.inputs) == 1 else head  # k/v rows are already per group
        slices.append(Slice(att.path(child), "weight", 0, None, unit, True))
        if layer.bias is not None:
            slices.append(Slice(att.path(child), "bias", 0, None, unit, True))
    cols = torch.arange(heads * d) // d // g
    slices.append(Slice(att.path(att.out), "weight", 1, None, cols, False))
    return NeuronGroups(f"{att.name}:heads", heads // g, slices, [att.name])


def hand_head_groups(model: nn.Module, example_inputs: Any) -> tuple[list[NeuronGroups], set[str]]:
    """Head families of the hand-written attention modules whose forward survives a head removal, and
    the modules whose channels no family may hold: every q/k/v Linear (its output channels are not
    removable one by one; the width it reads is) and each attention module whose forward fails with an
    input feature removed (no family may hold the width it reads).

    Example:
        >>> class Attn(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.num_heads, self.qkv, self.proj = 2, nn.Linear(8, 24), nn.Linear(8, 8)
        ...     def forward(self, x):
        ...         b, t, _ = x.shape
        ...         q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        ...         out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        ...         return self.proj(out.transpose(1, 2).reshape(b, t, -1))
        >>> families, left_out = hand_head_groups(nn.Sequential(Attn()), torch.zeros(1, 3, 8))
        >>> [(f.name, f.num_groups) for f in families], left_out
        ([('0:heads', 2)], {'0.qkv'})
    """
    found = find_hand_attention(model)
    if not found:
        return [], set()
    left_out = {f"{a.name}.{i}" for a in found for i in a.inputs}
    calls = capture_calls(model, [a.name for a in found], example_inputs)
    families = []
    for att in found:
        if att.name not in calls:
            continue
        call = calls[att.name]
        if (failure := _trial(model, att, call, width=True)) is not None:
            warnings.warn(
                f"the input width of attention {att.name!r} is not grouped: its forward fails with an "
                f"input feature removed ({failure})",
                stacklevel=3,
            )
            left_out.add(att.name)  # every family reading its input
        if att.heads(model)[0] // att.group(model) < 2:  # one head (or one key/value group) to keep
            warnings.warn(
                f"the heads of attention {att.name!r} are not grouped: it has one key/value head, and its "
                "q/k/v channels are not removable one by one (the attention scale depends on their number)",
                stacklevel=3,
            )
            continue
        if (failure := _trial(model, att, call, width=False)) is None:
            families.append(_family(model, att))
        else:
            warnings.warn(
                f"the heads of attention {att.name!r} are not grouped: its forward fails with a head "
                f"removed ({failure}); it must read its head count from {att.count!r}",
                stacklevel=3,
            )
    return families, left_out


def _trial(model: nn.Module, att: HandAttention, call: Call, width: bool) -> str | None:
    """``None`` when a copy of the module still runs, with the same output width, with a head (or an
    input feature, ``width``) removed; else what went wrong."""
    trial = nn.Module()
    module = copy.deepcopy(model.get_submodule(att.name))
    trial.add_module("attn", module)
    local = dataclasses.replace(att, name="attn")
    if att.out_owner is not None:  # the output Linear lives beside the attention: copied beside it
        owner = nn.Module()
        owner.add_module(att.out, copy.deepcopy(att.linear(model, att.out)))
        trial.add_module("owner", owner)
        local.out_owner = "owner"

    def run(x: torch.Tensor | None) -> torch.Tensor:
        y = _first(call(module, x))
        return local.linear(trial, att.out)(y) if att.out_owner is not None else y

    try:
        x = None
        with torch.no_grad():
            want = run(x).shape
            if width:
                for child in att.inputs:
                    _cut(local.linear(trial, child), 1, torch.arange(1, call.hidden.shape[-1]))
                x = call.hidden[..., 1:]
            else:
                prune_hand_heads(trial, "attn", [0], fold=False, att=local)
            got = run(x).shape
    except Exception as err:  # the user's forward code
        return f"{type(err).__name__}: {err}"
    return None if got == want else f"its output shape became {tuple(got)} from {tuple(want)}"


def _first(output: Any) -> torch.Tensor:
    """The attention's output tensor (Hugging Face modules return it with their attention weights)."""
    return output[0] if isinstance(output, (tuple, list)) else output


@torch.no_grad()
def _cut(layer: nn.Linear, dim: int, keep: torch.Tensor) -> None:
    layer.weight = nn.Parameter(layer.weight.data.index_select(dim, keep.to(layer.weight.device)))
    if dim == 0 and layer.bias is not None:
        layer.bias = nn.Parameter(layer.bias.data.index_select(0, keep.to(layer.bias.device)))
    layer.out_features, layer.in_features = layer.weight.shape


@torch.no_grad()
def prune_hand_heads(
    model: nn.Module, name: str, remove: Sequence[int], fold: bool, att: HandAttention | None = None
) -> dict[str, dict[int, torch.Tensor]]:
    """Remove heads ``remove`` of the hand-written attention ``name``; the kept indices of each parameter.

    With ``fold`` the value bias of each removed head is folded into the output Linear's bias.
    """
    att = att or _describe(name, model.get_submodule(name), model)
    if att is None:
        raise ValueError(f"{name!r} is neither an nn.MultiheadAttention nor a recognized attention module")
    heads, d = att.heads(model)
    g = att.group(model)
    keep_units = [u for u in range(heads // g) if u not in set(remove)]
    if not keep_units:
        raise ValueError(f"removing every head of {name!r} is not possible")
    keep_heads = [h for h in range(heads) if h // g in keep_units]
    inner = heads * d
    cols = torch.tensor([h * d + j for h in keep_heads for j in range(d)], dtype=torch.long)
    gone = [h for h in range(heads) if h // g not in keep_units]
    out, value = att.linear(model, att.out), att.linear(model, att.inputs[-1])
    if fold and out.bias is not None and value.bias is not None and gone:
        offset = 2 * inner if len(att.inputs) == 1 else 0  # a packed qkv's v rows come last
        out_cols = torch.tensor([h * d + j for h in gone for j in range(d)])
        v_rows = torch.tensor([offset + (h // g) * d + j for h in gone for j in range(d)])
        out.bias.add_(out.weight[:, out_cols] @ value.bias[v_rows])
    kv_rows = torch.tensor([u * d + j for u in keep_units for j in range(d)], dtype=torch.long)
    kept: dict[str, dict[int, torch.Tensor]] = {}
    for i, child in enumerate(att.inputs):
        layer = att.linear(model, child)
        if len(att.inputs) == 1:
            rows = torch.cat([cols + part * inner for part in range(layer.out_features // inner)])
        else:
            rows = cols if i == 0 else kv_rows
        _cut(layer, 0, rows)
        kept[f"{att.path(child)}.weight"] = kept[f"{att.path(child)}.bias"] = {0: rows}
    _cut(out, 1, cols)
    kept[f"{att.path(att.out)}.weight"] = {1: cols}
    module = model.get_submodule(name)
    if att.count:
        setattr(module, att.count, len(keep_heads))
    for attr in _INNER_WIDTHS:  # the usual names of heads * head_dim
        if getattr(module, attr, None) == inner:
            setattr(module, attr, len(keep_heads) * d)
    return kept
