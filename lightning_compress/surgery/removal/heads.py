"""Attention heads removed whole: a head's q, k, v rows and its output-projection columns.

In ``nn.MultiheadAttention`` head ``h`` owns rows ``h*d : (h+1)*d`` of each of the q, k and v parts of
``in_proj_weight`` (and ``in_proj_bias``) and the same columns of ``out_proj.weight``. Removing heads
leaves ``embed_dim`` (the width the module reads and writes: a transformer's residual stream) as it was
and shrinks the inner width ``num_heads * head_dim``; PyTorch's class ties the two together, so the layer
is replaced, at the same module path, by :class:`PrunedMultiheadAttention`: a subclass with the same
call signature, parameter names and results, where the inner width is free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightning_compress.surgery.base.records import append_history
from lightning_compress.surgery.groups import head_shape, prune_hand_heads
from lightning_compress.surgery.removal.inputs import _set_submodule
from lightning_compress.surgery.removal.optimizer import rebind_by_name

__all__ = ["PrunedMultiheadAttention", "count_attention_macs", "remove_heads", "replay_prune_heads"]


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


class PrunedMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` with ``num_heads * head_dim`` free of ``embed_dim`` (heads removed).

    Self- and cross-attention, ``attn_mask`` (2-d, or 3-d over the remaining heads), ``key_padding_mask``,
    ``need_weights``, ``is_causal``, dropout, ``batch_first`` and unbatched inputs work as in PyTorch.

    Example:
        >>> attn = PrunedMultiheadAttention(8, num_heads=1, head_dim=4, batch_first=True)
        >>> out, weights = attn(torch.zeros(2, 5, 8), torch.zeros(2, 5, 8), torch.zeros(2, 5, 8))
        >>> out.shape, weights.shape, tuple(attn.in_proj_weight.shape)
        (torch.Size([2, 5, 8]), torch.Size([2, 5, 5]), (12, 8))
    """

    width_free = True  # its embedding width may change: see ``fit_attributes``

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        head_dim: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            embed_dim, 1, dropout=dropout, bias=bias, batch_first=batch_first, device=device, dtype=dtype
        )
        inner = num_heads * head_dim
        self.num_heads, self.head_dim = num_heads, head_dim
        self._qkv_same_embed_dim = False  # keeps PyTorch's fused paths (inner == embed_dim) away
        factory = {"device": device, "dtype": dtype}
        self.in_proj_weight = nn.Parameter(torch.empty(3 * inner, embed_dim, **factory))
        nn.init.xavier_uniform_(self.in_proj_weight)
        if bias:
            self.in_proj_bias = nn.Parameter(torch.zeros(3 * inner, **factory))
        linear = nn.modules.linear.NonDynamicallyQuantizableLinear
        self.out_proj = linear(inner, embed_dim, bias=bias, **factory)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, head_dim={self.head_dim}"

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        n, length, _ = query.shape
        source = key.shape[1]
        h, d = self.num_heads, self.head_dim
        biases = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        q, k, v = (
            F.linear(x, w, b).view(n, -1, h, d).transpose(1, 2)
            for x, w, b in zip((query, key, value), self.in_proj_weight.chunk(3), biases, strict=True)
        )
        mask: torch.Tensor | None = None
        if attn_mask is not None:
            mask = _additive(attn_mask, q.dtype)
            mask = mask.view(1, 1, length, source) if mask.dim() == 2 else mask.view(n, h, length, source)
        if key_padding_mask is not None:
            pad = _additive(key_padding_mask, q.dtype).view(n, 1, 1, source)
            mask = pad if mask is None else mask + pad
        causal = is_causal and mask is None
        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)
            if causal:
                scores = scores.masked_fill(
                    torch.ones(length, source, dtype=torch.bool, device=q.device).triu(1), float("-inf")
                )
            if mask is not None:
                scores = scores + mask
            weights = scores.softmax(-1)
            out = F.dropout(weights, dropout) @ v
            if average_attn_weights:
                weights = weights.mean(1)
            if unbatched:
                weights = weights.squeeze(0)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)
        out = F.linear(
            out.transpose(1, 2).reshape(n, length, h * d), self.out_proj.weight, self.out_proj.bias
        )
        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights


@torch.no_grad()
def _prune(
    model: nn.Module, name: str, remove: Sequence[int], fold: bool
) -> dict[str, dict[int, torch.Tensor]]:
    attn = model.get_submodule(name)
    if not isinstance(attn, nn.MultiheadAttention):
        return prune_hand_heads(model, name, remove, fold)
    if attn.in_proj_weight is None:
        raise ValueError(f"{name!r} is not an nn.MultiheadAttention with a packed in_proj_weight")
    heads, d = head_shape(attn)
    keep = [i for i in range(heads) if i not in set(remove)]
    if not keep:
        raise ValueError(f"removing every head of {name!r} is not possible")
    inner = heads * d
    cols = torch.tensor([h * d + j for h in keep for j in range(d)], dtype=torch.long)
    rows = torch.cat([cols + part * inner for part in range(3)])
    weight, bias = attn.in_proj_weight, attn.in_proj_bias
    new = PrunedMultiheadAttention(
        attn.embed_dim,
        len(keep),
        d,
        dropout=attn.dropout,
        bias=bias is not None,
        batch_first=attn.batch_first,
        device=weight.device,
        dtype=weight.dtype,
    )
    new.in_proj_weight.copy_(weight[rows.to(weight.device)])
    if bias is not None and new.in_proj_bias is not None:
        new.in_proj_bias.copy_(bias[rows.to(bias.device)])
    out_w = attn.out_proj.weight
    new.out_proj.weight.copy_(out_w[:, cols.to(out_w.device)])
    if attn.out_proj.bias is not None and new.out_proj.bias is not None:
        new.out_proj.bias.copy_(attn.out_proj.bias)
        gone = torch.tensor(
            [h * d + j for h in range(heads) if h not in keep for j in range(d)], dtype=torch.long
        )
        if fold and bias is not None and len(gone):
            # a head whose value weights are zero outputs its value bias, whatever it attends to
            new.out_proj.bias.add_(out_w[:, gone] @ bias[gone + 2 * inner])
    new.train(attn.training)
    _set_submodule(model, name, new)
    return {
        f"{name}.in_proj_weight": {0: rows},
        f"{name}.in_proj_bias": {0: rows},
        f"{name}.out_proj.weight": {1: cols},
    }


def replay_prune_heads(model: nn.Module, record: dict[str, Any], example_inputs: Any) -> None:
    """Replay a ``{"kind": "prune_heads", "module": NAME, "idxs": [...]}`` record (shapes only)."""
    _prune(model, record["module"], record["idxs"], fold=False)


def remove_heads(
    model: nn.Module,
    name: str,
    remove: Sequence[int] | torch.Tensor,
    *,
    optimizers: Sequence[torch.optim.Optimizer] = (),
    fold_constants: bool = True,
) -> list[dict[str, Any]]:
    """Remove heads ``remove`` of the attention layer ``name``; rebind ``optimizers``; record it.

    With ``fold_constants`` the value bias of each removed head (what it outputs once its value weights
    are zero) is folded into the output projection's bias.

    Example:
        >>> model = nn.Sequential(nn.MultiheadAttention(8, 4, batch_first=True))
        >>> remove_heads(model, "0", [1, 2])
        [{'kind': 'prune_heads', 'module': '0', 'idxs': [1, 2]}]
        >>> model[0].num_heads, tuple(model[0].out_proj.weight.shape)
        (2, (8, 4))
    """
    idxs = sorted({int(i) for i in (remove.tolist() if isinstance(remove, torch.Tensor) else remove)})
    if not idxs:
        return []
    old_params = dict(model.named_parameters())
    kept = _prune(model, name, idxs, fold_constants)
    new_params = dict(model.named_parameters())
    for optimizer in optimizers:
        rebind_by_name(optimizer, old_params, new_params, kept)
    record = {"kind": "prune_heads", "module": name, "idxs": idxs}
    append_history(model, [record])
    return [record]


def count_attention_macs(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
    """MACs of :class:`PrunedMultiheadAttention`, counted as Torch-Pruning counts ``nn.MultiheadAttention``.

    Example:
        >>> from lightning_compress.surgery import count_params_and_macs
        >>> dense = nn.MultiheadAttention(8, 2, batch_first=True)
        >>> pruned = PrunedMultiheadAttention(8, 2, 4, batch_first=True)   # every head kept: same count
        >>> x = torch.zeros(1, 5, 8)
        >>> count_params_and_macs(dense, (x, x, x)) == count_params_and_macs(pruned, (x, x, x))
        True
    """
    if not isinstance(module, PrunedMultiheadAttention):
        raise TypeError(f"expected a PrunedMultiheadAttention, got {type(module).__name__}")
    q, k = inputs[0], inputs[1]
    batch_dim, len_dim = (0, 1) if module.batch_first or q.dim() == 2 else (1, 0)
    batch = 1 if q.dim() == 2 else q.shape[batch_dim]
    length, source = q.shape[len_dim], k.shape[len_dim]
    embed, heads, d = module.embed_dim, module.num_heads, module.head_dim
    inner = heads * d
    flops = length * inner + (length + 2 * source) * embed * inner  # q scaling, projections
    if module.in_proj_bias is not None:
        flops += (length + 2 * source) * inner
    flops += heads * (2 * length * source * d + length * source)  # q k^T, softmax, weights @ v
    flops += length * embed * (inner + 1)  # output projection
    vars(module)["__flops__"] = int(getattr(module, "__flops__", 0)) + int(flops * batch)
