"""Attention written by hand: heads of separate q/k/v Linears (or one packed ``qkv`` Linear) as groups.

A module is recognized as attention when it holds an integer head count (``num_heads``, ``n_heads``,
``n_head``, ``num_attention_heads`` or ``heads``) and Linear children named as one of the usual sets:
``q_proj``/``k_proj``/``v_proj`` + ``out_proj``/``o_proj``; ``query``/``key``/``value`` + ``out``/``proj``/``dense``;
``q``/``k``/``v`` + ``o``/``out``/``proj``; or a packed ``qkv`` (rows ordered q, k, v, each head by head)
+ ``proj``/``out``/``out_proj``. Head ``h`` owns rows ``h*d : (h+1)*d`` of q, k and v and the same
columns of the output Linear. Removing heads lowers the head count attribute; the module's forward must
read it (``x.view(b, t, self.num_heads, self.head_dim)``). A module whose forward still fails after a
trial removal (it reshapes with its input width, say) is left out with a warning; so are the q/k/v
channels of every recognized module, which are not removable one by one (the attention scale and
the head reshape depend on the head size).
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

from lightning_compress.surgery.base.activations import capture_inputs
from lightning_compress.surgery.groups.core import NeuronGroups, Slice

__all__ = ["HandAttention", "find_hand_attention", "hand_head_groups", "prune_hand_heads"]

_COUNTS = ("num_heads", "n_heads", "n_head", "num_attention_heads", "heads")
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
    """

    name: str
    count: str
    inputs: tuple[str, ...]
    out: str

    def heads(self, model: nn.Module) -> tuple[int, int]:
        """``(num_heads, head_dim)`` as the module's weights are now."""
        heads = int(getattr(model.get_submodule(self.name), self.count))
        return heads, self.linear(model, self.out).in_features // heads

    def linear(self, model: nn.Module, child: str) -> nn.Linear:
        """The Linear ``child`` of this module in ``model``."""
        layer = model.get_submodule(f"{self.name}.{child}")
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"{self.name}.{child} is not an nn.Linear")
        return layer


def _describe(name: str, module: nn.Module) -> HandAttention | None:
    if isinstance(module, nn.MultiheadAttention):
        return None
    count = next((c for c in _COUNTS if isinstance(getattr(module, c, None), int)), None)
    if count is None:
        return None
    children = dict(module.named_children())
    for inputs, outs in _LAYOUTS:
        out = next((o for o in outs if isinstance(children.get(o), nn.Linear)), None)
        if out is not None and all(isinstance(children.get(i), nn.Linear) for i in inputs):
            return HandAttention(name, count, inputs, out)
    return None


def find_hand_attention(model: nn.Module) -> list[HandAttention]:
    """Every hand-written attention module of ``model`` (see the module docstring).

    Example:
        >>> class Attn(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.num_heads, self.qkv, self.proj = 2, nn.Linear(8, 24), nn.Linear(8, 8)
        >>> find_hand_attention(nn.Sequential(Attn()))
        [HandAttention(name='0', count='num_heads', inputs=('qkv',), out='proj')]
    """
    return [a for n, m in model.named_modules() if (a := _describe(n, m)) is not None]


def _family(model: nn.Module, att: HandAttention) -> NeuronGroups:
    heads, d = att.heads(model)
    inner = heads * d
    slices = []
    for child in att.inputs:
        layer = att.linear(model, child)
        rows = (torch.arange(layer.out_features) % inner) // d
        slices.append(Slice(f"{att.name}.{child}", "weight", 0, None, rows, True))
        if layer.bias is not None:
            slices.append(Slice(f"{att.name}.{child}", "bias", 0, None, rows, True))
    slices.append(Slice(f"{att.name}.{att.out}", "weight", 1, None, torch.arange(inner) // d, False))
    return NeuronGroups(f"{att.name}:heads", heads, slices, [att.name])


def hand_head_groups(model: nn.Module, example_inputs: Any) -> tuple[list[NeuronGroups], set[str]]:
    """Head families of the hand-written attention modules whose forward survives a head removal, and
    the modules no channel family may touch: every q/k/v Linear (its channels are not removable one by
    one) and each attention module whose forward fails with an input feature removed.

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
    inputs = capture_inputs(model, [a.name for a in found], example_inputs)
    families = []
    for att in found:
        if att.name not in inputs:
            continue
        x = inputs[att.name][:1]
        if not _survives(model, att, x, width=True):
            warnings.warn(
                f"the input width of attention {att.name!r} is not grouped: its forward fails with an "
                "input feature removed",
                stacklevel=3,
            )
            left_out.add(att.name)  # every family reading its input
        if att.heads(model)[0] < 2:
            continue
        if _survives(model, att, x, width=False):
            families.append(_family(model, att))
        else:
            warnings.warn(
                f"the heads of attention {att.name!r} are not grouped: its forward fails with a head "
                f"removed (it must read its head count from {att.count!r})",
                stacklevel=3,
            )
    return families, left_out


def _survives(model: nn.Module, att: HandAttention, x: torch.Tensor, width: bool) -> bool:
    """Whether a copy of the module still runs, with the same output width, with a head (or an input
    feature, ``width``) removed."""
    trial = nn.Module()
    module = copy.deepcopy(model.get_submodule(att.name))
    trial.add_module("attn", module)
    local = dataclasses.replace(att, name="attn")
    try:
        with torch.no_grad():
            want = module(x).shape
            if width:
                for child in att.inputs:
                    _cut(local.linear(trial, child), 1, torch.arange(1, x.shape[-1]))
                x = x[..., 1:]
            else:
                prune_hand_heads(trial, "attn", [0], fold=False, att=local)
            return bool(module(x).shape == want)
    except Exception:  # the user's forward code
        return False


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
    att = att or _describe(name, model.get_submodule(name))
    if att is None:
        raise ValueError(f"{name!r} is neither an nn.MultiheadAttention nor a recognized attention module")
    heads, d = att.heads(model)
    keep_heads = [h for h in range(heads) if h not in set(remove)]
    if not keep_heads:
        raise ValueError(f"removing every head of {name!r} is not possible")
    inner = heads * d
    cols = torch.tensor([h * d + j for h in keep_heads for j in range(d)], dtype=torch.long)
    gone = torch.tensor([h * d + j for h in range(heads) if h not in keep_heads for j in range(d)])
    out, value = att.linear(model, att.out), att.linear(model, att.inputs[-1])
    if fold and out.bias is not None and value.bias is not None and len(gone):
        offset = 2 * inner if len(att.inputs) == 1 else 0  # a packed qkv's v rows come last
        out.bias.add_(out.weight[:, gone] @ value.bias[gone + offset])
    kept: dict[str, dict[int, torch.Tensor]] = {}
    for child in att.inputs:
        layer = att.linear(model, child)
        rows = torch.cat([cols + part * inner for part in range(layer.out_features // inner)])
        _cut(layer, 0, rows)
        kept[f"{name}.{child}.weight"] = kept[f"{name}.{child}.bias"] = {0: rows}
    _cut(out, 1, cols)
    kept[f"{name}.{att.out}.weight"] = {1: cols}
    module = model.get_submodule(name)
    setattr(module, att.count, len(keep_heads))
    for attr in ("all_head_size", "inner_dim", "inner"):  # the usual names of heads * head_dim
        if getattr(module, attr, None) == inner:
            setattr(module, attr, len(keep_heads) * d)
    return kept
