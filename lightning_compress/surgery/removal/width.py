"""A transformer's residual width as one family, removed exactly through its LayerNorms and attention.

A channel of the residual stream is written by the embedding (and a learned position table), by every
block's attention output projection and MLP output layer, and read by every LayerNorm, attention input
projection and MLP input layer: one coupled family, removed from every block at once. Its incoming group
holds everything that writes the channel and the LayerNorms' scale and shift; when all of it is zero the
channel is zero everywhere and every LayerNorm outputs zero there.

Removing a feature that a LayerNorm normalizes over changes its mean and variance, even an all-zero one.
Each LayerNorm of the family is therefore replaced by :class:`PrunedLayerNorm`, which keeps dividing by
the original width (the removed features count as the zeros they were), and each attention layer by
:class:`~lightning_compress.surgery.removal.PrunedMultiheadAttention`, whose embedding width is free of its
inner width: removal is exact. Families without a LayerNorm or an attention layer do not come here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lightning_compress.surgery.base import rms_norm_eps
from lightning_compress.surgery.base.records import append_history
from lightning_compress.surgery.groups import HEADS_SUFFIX, NeuronGroups, find_groups, fit_attributes
from lightning_compress.surgery.groups.norms import channels_first_layer_norm
from lightning_compress.surgery.removal.heads import PrunedMultiheadAttention, _prune
from lightning_compress.surgery.removal.inputs import _set_submodule
from lightning_compress.surgery.removal.optimizer import rebind_by_name

__all__ = [
    "PrunedLayerNorm",
    "PrunedLayerNorm2d",
    "PrunedRMSNorm",
    "count_layer_norm_macs",
    "is_width_family",
    "remove_width",
    "replay_prune_width",
]


class PrunedLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the features left of ``full_width``: removed features count as zeros.

    Its output equals the original LayerNorm's on the kept features whenever the removed ones were zero.

    Example:
        >>> x = torch.randn(3, 5); x[:, 1] = 0
        >>> full, pruned = nn.LayerNorm(5), PrunedLayerNorm(4, full_width=5)
        >>> torch.allclose(full(x)[:, [0, 2, 3, 4]], pruned(x[:, [0, 2, 3, 4]]), atol=1e-6)
        True
    """

    def __init__(
        self,
        normalized_shape: int,
        full_width: int,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(normalized_shape, eps, elementwise_affine, bias=bias, device=device, dtype=dtype)
        if full_width < normalized_shape:
            raise ValueError(f"full_width {full_width} is below the width {normalized_shape}")
        self.full_width = full_width

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, full_width={self.full_width}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.full_width
        mean = x.sum(-1, keepdim=True) / n
        missing = n - x.shape[-1]
        var = (((x - mean) ** 2).sum(-1, keepdim=True) + missing * mean**2) / n
        y = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y


class PrunedLayerNorm2d(PrunedLayerNorm):
    """:class:`PrunedLayerNorm` over dimension 1 of an ``(N, C, H, W)`` input (a channels-first ``LayerNorm2d``).

    Example:
        >>> x = torch.randn(2, 5, 3, 3); x[:, 1] = 0
        >>> full, pruned = PrunedLayerNorm2d(5, full_width=5), PrunedLayerNorm2d(4, full_width=5)
        >>> torch.allclose(full(x)[:, [0, 2, 3, 4]], pruned(x[:, [0, 2, 3, 4]]), atol=1e-6)
        True
    """

    channels_first = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class PrunedRMSNorm(nn.Module):
    """An RMS normalization over the features left of ``full_width``: removed features count as zeros.

    Example:
        >>> x = torch.randn(3, 5); x[:, 1] = 0
        >>> full, pruned = nn.RMSNorm(5, eps=1e-6), PrunedRMSNorm(4, full_width=5, eps=1e-6)
        >>> torch.allclose(full(x)[:, [0, 2, 3, 4]], pruned(x[:, [0, 2, 3, 4]]), atol=1e-6)
        True
    """

    def __init__(
        self, width: int, full_width: int, eps: float = 1e-6, device: Any = None, dtype: Any = None
    ) -> None:
        super().__init__()
        if full_width < width:
            raise ValueError(f"full_width {full_width} is below the width {width}")
        self.weight = nn.Parameter(torch.ones(width, device=device, dtype=dtype))
        self.full_width, self.eps = full_width, eps

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, full_width={self.full_width}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).sum(-1, keepdim=True) / self.full_width + self.eps)
        return self.weight * y.to(x.dtype)


def count_layer_norm_macs(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
    """MACs of :class:`PrunedLayerNorm`, counted as Torch-Pruning counts ``nn.LayerNorm``.

    Example:
        >>> from lightning_compress.surgery import count_params_and_macs
        >>> x = torch.zeros(2, 16, 32)
        >>> count_params_and_macs(nn.LayerNorm(32), x) == count_params_and_macs(PrunedLayerNorm(32, 32), x)
        True
    """
    if not isinstance(module, nn.LayerNorm):
        raise TypeError(f"expected a LayerNorm, got {type(module).__name__}")
    flops = inputs[0].numel() * (2 if module.elementwise_affine else 1)
    vars(module)["__flops__"] = int(getattr(module, "__flops__", 0)) + int(flops)


def is_width_family(model: nn.Module, family: NeuronGroups) -> bool:
    """A family that holds a LayerNorm or an attention layer: removed by :func:`remove_width`.

    Example:
        >>> from lightning_compress.models import PatchTransformer
        >>> model = PatchTransformer(depth=1); x = torch.zeros(1, 1, 28, 28)
        >>> [f.name for f in find_groups(model, x) if is_width_family(model, f)]
        ['blocks.0.linear2']
    """
    return not family.name.endswith(HEADS_SUFFIX) and any(
        isinstance(
            layer := model.get_submodule(s.module), (nn.LayerNorm, nn.MultiheadAttention, PrunedRMSNorm)
        )
        or rms_norm_eps(layer) is not None
        for s in family.slices
    )


def _convert(model: nn.Module, family: NeuronGroups) -> None:
    """Replace the family's LayerNorms and attention layers by their width-free subclasses."""
    for name in dict.fromkeys(s.module for s in family.slices):
        layer = model.get_submodule(name)
        if isinstance(layer, nn.LayerNorm) and not isinstance(layer, PrunedLayerNorm):
            (width,) = layer.normalized_shape
            ref = layer.weight if layer.weight is not None else None
            kind = PrunedLayerNorm2d if channels_first_layer_norm(layer) else PrunedLayerNorm
            new = kind(
                width,
                width,
                layer.eps,
                layer.elementwise_affine,
                bias=layer.bias is not None,
                device=None if ref is None else ref.device,
                dtype=None if ref is None else ref.dtype,
            )
            new.load_state_dict(layer.state_dict())
            new.train(layer.training)
            _set_submodule(model, name, new)
        elif not isinstance(layer, PrunedRMSNorm) and (eps := rms_norm_eps(layer)) is not None:
            weight = layer.weight
            assert isinstance(weight, torch.Tensor)
            new_rms = PrunedRMSNorm(len(weight), len(weight), eps, device=weight.device, dtype=weight.dtype)
            new_rms.load_state_dict({"weight": weight.data})
            new_rms.train(layer.training)
            _set_submodule(model, name, new_rms)
        elif isinstance(layer, nn.MultiheadAttention) and not isinstance(layer, PrunedMultiheadAttention):
            _prune(model, name, [], fold=False)


_WIDTH_NAMES = ("hidden_dim", "embed_dim", "hidden_size", "d_model", "num_features", "width", "dim")
"""Attributes in which models cache their residual width (torchvision's ``VisionTransformer.hidden_dim``
reshapes the patch embedding with it)."""


def _fix_cached_widths(model: nn.Module, family: NeuronGroups, old: int, new: int) -> None:
    """Lower the cached width attributes (:data:`_WIDTH_NAMES`) equal to ``old`` of the modules that hold
    the family's layers (the model itself included)."""
    holders = {""} | {n for s in family.slices for n in _ancestors(s.module)}
    for name in holders:
        module = model.get_submodule(name)
        for attr in _WIDTH_NAMES:
            if type(vars(module).get(attr)) is int and vars(module)[attr] == old:
                setattr(module, attr, new)


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@torch.no_grad()
def _slice(
    model: nn.Module, family: NeuronGroups, removed: torch.Tensor
) -> dict[str, dict[int, torch.Tensor]]:
    _convert(model, family)
    kept: dict[str, dict[int, torch.Tensor]] = {}
    touched: dict[str, nn.Module] = {}
    shared: dict[int, nn.Parameter] = {}  # a tied parameter (embedding and output head) stays one
    for sl in family.slices:
        layer = model.get_submodule(sl.module)
        tensor = getattr(layer, sl.param)
        gone = set(family.positions(sl, removed).tolist())
        keep = torch.tensor([i for i in range(tensor.shape[sl.dim]) if i not in gone], dtype=torch.long)
        if id(tensor) not in shared:
            shared[id(tensor)] = nn.Parameter(tensor.data.index_select(sl.dim, keep.to(tensor.device)))
        setattr(layer, sl.param, shared[id(tensor)])
        full = f"{sl.module}.{sl.param}" if sl.module else sl.param
        kept.setdefault(full, {})[sl.dim] = keep
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and sl.param == "weight":
            for buf in ("running_mean", "running_var"):
                if isinstance(value := getattr(layer, buf, None), torch.Tensor):
                    setattr(layer, buf, value.index_select(0, keep.to(value.device)))
        touched[sl.module] = layer
    for layer in touched.values():
        fit_attributes(layer)
    _fix_cached_widths(model, family, family.num_groups, family.num_groups - len(set(removed.tolist())))
    return kept


def remove_width(
    model: nn.Module,
    family: NeuronGroups,
    remove: Sequence[int] | torch.Tensor,
    *,
    optimizers: Sequence[torch.optim.Optimizer] = (),
) -> list[dict[str, Any]]:
    """Remove channels ``remove`` of a family that holds LayerNorms or attention layers; record it.

    Example:
        >>> from lightning_compress.models import PatchTransformer
        >>> model = PatchTransformer(depth=1); x = torch.zeros(1, 1, 28, 28)
        >>> width = next(f for f in find_groups(model, x) if is_width_family(model, f))
        >>> remove_width(model, width, [0, 5])
        [{'kind': 'prune_width', 'module': 'blocks.0.linear2', 'idxs': [0, 5]}]
        >>> model.pos.shape, model.blocks[0].self_attn.embed_dim, model.blocks[0].norm1
        (torch.Size([1, 16, 30]), 30, PrunedLayerNorm((30,), eps=1e-05, elementwise_affine=True, bias=True, full_width=32))
    """
    idxs = sorted({int(i) for i in (remove.tolist() if isinstance(remove, torch.Tensor) else remove)})
    if not idxs:
        return []
    if len(idxs) >= family.num_groups:
        raise ValueError(f"removing every channel of {family.name!r} is not possible")
    old_params = dict(model.named_parameters())
    kept = _slice(model, family, torch.tensor(idxs, dtype=torch.long))
    new_params = dict(model.named_parameters())
    for optimizer in optimizers:
        rebind_by_name(optimizer, old_params, new_params, kept)
    record = {"kind": "prune_width", "module": family.name, "idxs": idxs}
    append_history(model, [record])
    return [record]


def replay_prune_width(model: nn.Module, record: dict[str, Any], example_inputs: Any) -> None:
    """Replay a ``{"kind": "prune_width", "module": NAME, "idxs": [...]}`` record (shapes only)."""
    families = [f for f in find_groups(model, example_inputs) if f.name == record["module"]]
    if not families:
        raise ValueError(f"no family rooted at {record['module']!r} to replay a width removal on")
    _slice(model, families[0], torch.tensor(record["idxs"], dtype=torch.long))
