"""Attention heads as groups: one family per ``nn.MultiheadAttention``, a group per head.

Head ``h`` owns rows ``h*d : (h+1)*d`` of each of the q, k and v parts of ``in_proj_weight`` (and
``in_proj_bias``) and the same columns of ``out_proj.weight``; :mod:`~lightning_compress.surgery.removal.heads`
removes them.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_compress.surgery.groups.core import NeuronGroups, Slice

__all__ = ["HEADS_SUFFIX", "head_groups", "head_shape"]

HEADS_SUFFIX = ":heads"
"""The suffix of a head family's name: ``"<layer>:heads"``."""


def head_shape(attn: nn.MultiheadAttention) -> tuple[int, int]:
    """``(num_heads, head_dim)`` of an attention layer."""
    return attn.num_heads, attn.head_dim


def head_groups(model: nn.Module) -> list[NeuronGroups]:
    """One family per ``nn.MultiheadAttention`` with two heads or more: a group per head.

    Layers with separate q/k/v projection weights (``kdim``/``vdim`` unlike ``embed_dim``) or with
    ``add_bias_kv`` are left out.

    Example:
        >>> model = nn.Sequential(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True))
        >>> [(f.name, f.num_groups, [s.param for s in f.slices]) for f in head_groups(model)]
        [('0.self_attn:heads', 2, ['in_proj_weight', 'in_proj_bias', 'weight'])]
    """
    families = []
    for name, attn in model.named_modules():
        if (
            not isinstance(attn, nn.MultiheadAttention)
            or attn.in_proj_weight is None
            or attn.bias_k is not None
        ):
            continue
        heads, d = head_shape(attn)
        if heads < 2:
            continue
        rows = (torch.arange(3 * heads * d) % (heads * d)) // d
        slices = [Slice(name, "in_proj_weight", 0, None, rows, True)]
        if attn.in_proj_bias is not None:
            slices.append(Slice(name, "in_proj_bias", 0, None, rows, True))
        slices.append(Slice(f"{name}.out_proj", "weight", 1, None, torch.arange(heads * d) // d, False))
        families.append(NeuronGroups(f"{name}{HEADS_SUFFIX}", heads, slices, [name]))
    return families
