"""Which parameter slices of each layer kind belong to a neuron (channel) family.

A family holds, for each layer it touches, the dimension its channels index:

* ``Linear`` and ``Conv`` with ``groups=1``: output channels are ``weight`` rows (dim 0) and ``bias``;
  a consumer's input channels are ``weight`` columns (dim 1).
* ``ConvTranspose``: output channels are ``weight`` dim 1 and ``bias``; input channels ``weight`` dim 0.
* Depthwise conv (``groups == in_channels == out_channels``): channel ``c`` in is channel ``c`` out, so it
  passes the family through; its filter and bias are part of the channel's incoming group.
* Grouped conv (``1 < groups``, not depthwise): its output channels are a family whose removals are made
  evenly, the same number in each of its ``groups`` blocks, so ``groups`` still divides the width. The
  channels that *feed* a grouped conv are not grouped (removing input ``c`` of one block only is not a
  slice of its weight): such a family is left out, with a warning.
* ``nn.MultiheadAttention``: its unit is the head (see :mod:`lightning_compress.surgery.removal.heads`); the width
  it reads and writes (a transformer's residual stream) is one family across every block, with the
  input projection's columns and the output projection's rows (see :mod:`lightning_compress.surgery.removal.width`).
  Attention written by hand (separate q/k/v Linears or a packed ``qkv``) loses whole heads too
  (:mod:`lightning_compress.surgery.groups.attention`); its q/k/v channels are never grouped one by one.
* Normalizations (``BatchNorm``, 1-d ``LayerNorm``, ``GroupNorm``): ``weight`` and ``bias`` go with the
  producer. A family reaching a feature normalization other than an affine LayerNorm over exactly its
  channels is left out (:mod:`lightning_compress.surgery.groups.norms`).
* Hugging Face's ``Conv1D`` (GPT-2): a Linear stored transposed, outputs ``weight`` dim 1, inputs dim 0.
* RMS normalizations (``nn.RMSNorm``, ``LlamaRMSNorm``, ...: :func:`~lightning_compress.surgery.base.rms_norm_eps`):
  ``weight`` goes with the producer, as a LayerNorm's does.
* ``Embedding``: its embedding dimension (``weight`` dim 1) goes with the family it writes (a transformer's
  residual width); the vocabulary is never a family.
* Layers without parameters are transparent; any other layer with parameters stops with an error
  naming it.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_compress.surgery.base.conv1d import is_conv1d
from lightning_compress.surgery.base.rms import rms_norm_eps

__all__ = [
    "NORMS",
    "NotGroupable",
    "channel_blocks",
    "fit_attributes",
    "is_depthwise",
    "is_factorized",
    "param_specs",
]

_RMS = (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)


class NotGroupable(ValueError):
    """A family touches a layer that makes its channels impossible to remove one by one: it is skipped.

    Example:
        >>> try:
        ...     param_specs(nn.Conv2d(8, 8, 3, groups=2), "g", outgoing=True)
        ... except NotGroupable as why:
        ...     print(why)
        the channels feeding (or of) the grouped convolution 'g' are not grouped
    """


def is_depthwise(layer: nn.Module) -> bool:
    """A convolution whose every output channel reads only the input channel of the same index.

    Example:
        >>> is_depthwise(nn.Conv2d(8, 8, 3, groups=8)), is_depthwise(nn.Conv2d(8, 16, 3, groups=8))
        (True, False)
    """
    return (
        isinstance(layer, nn.modules.conv._ConvNd)
        and layer.groups > 1
        and layer.groups == layer.in_channels == layer.out_channels
    )


def channel_blocks(layer: nn.Module) -> int:
    """How many equal blocks a layer's output channels must be removed evenly from (1: no constraint).

    Example:
        >>> channel_blocks(nn.Conv2d(8, 12, 3, groups=4)), channel_blocks(nn.Conv2d(8, 8, 3, groups=8))
        (4, 1)
    """
    if isinstance(layer, nn.modules.conv._ConvNd) and layer.groups > 1 and not is_depthwise(layer):
        return layer.groups
    return 1


def param_specs(layer: nn.Module, name: str, outgoing: bool) -> list[tuple[str, int]]:
    """``(parameter, dim)`` pairs of ``layer`` that a family of its output (or input, ``outgoing``) channels holds
    (a child's parameter as ``"child.param"``).

    Raises :class:`NotGroupable` for a family that cannot be removed channel by channel, and
    ``ValueError`` for a layer kind this library does not know.

    Example:
        >>> param_specs(nn.ConvTranspose2d(4, 6, 2), "up", outgoing=False)
        [('weight', 1), ('bias', 0)]
        >>> param_specs(nn.Conv2d(6, 6, 3, groups=6), "dw", outgoing=True)
        [('weight', 0), ('bias', 0)]
        >>> param_specs(nn.MultiheadAttention(8, 2), "attn", outgoing=False)
        [('out_proj.weight', 0), ('out_proj.bias', 0)]
    """
    if isinstance(layer, nn.MultiheadAttention):
        if layer.in_proj_weight is None or layer.bias_k is not None:
            raise NotGroupable(
                f"the embedding width of attention {name!r} (separate q/k/v, or bias_kv) is not grouped"
            )
        return [("in_proj_weight", 1)] if outgoing else [("out_proj.weight", 0), ("out_proj.bias", 0)]
    if isinstance(layer, nn.modules.conv._ConvNd):
        if is_depthwise(layer):
            return [("weight", 0), ("bias", 0)]  # channel c in is channel c out: always the incoming side
        if layer.groups > 1 and (outgoing or layer.transposed):
            raise NotGroupable(
                f"the channels feeding (or of) the grouped convolution {name!r} are not grouped"
            )
        if layer.transposed:
            return [("weight", 0)] if outgoing else [("weight", 1), ("bias", 0)]
        return [("weight", 1)] if outgoing else [("weight", 0), ("bias", 0)]
    if isinstance(layer, nn.Linear):
        return [("weight", 1)] if outgoing else [("weight", 0), ("bias", 0)]
    if rms_norm_eps(layer) is not None:  # an RMS normalization: its weight goes with the producer
        return [] if outgoing else [("weight", 0)]
    if is_conv1d(layer):  # a Linear stored transposed: (in, out)
        return [("weight", 0)] if outgoing else [("weight", 1), ("bias", 0)]
    if isinstance(layer, nn.Embedding):  # its output features only: the vocabulary is never a family
        return [] if outgoing else [("weight", 1)]
    if isinstance(layer, NORMS):
        if isinstance(layer, nn.LayerNorm) and len(layer.normalized_shape) != 1:
            raise ValueError(f"layer {name!r}: only 1-d LayerNorm is supported")
        return [] if outgoing else [("weight", 0), ("bias", 0)]
    if not any(True for _ in layer.parameters(recurse=False)):
        return []
    raise ValueError(
        f"layer {name!r} ({type(layer).__name__}) holds parameters this library cannot group yet"
    )


def fit_attributes(layer: nn.Module) -> None:
    """Set a layer's size attributes from its (sliced) parameters.

    Example:
        >>> layer = nn.Linear(4, 3); layer.weight = nn.Parameter(layer.weight[:, :2])
        >>> fit_attributes(layer); layer
        Linear(in_features=2, out_features=3, bias=True)
    """
    weight = getattr(layer, "weight", None)
    if isinstance(layer, nn.Linear) and isinstance(weight, torch.Tensor):
        layer.out_features, layer.in_features = int(weight.shape[0]), int(weight.shape[1])
    elif is_conv1d(layer) and isinstance(weight, torch.Tensor):
        vars(layer).update(nx=int(weight.shape[0]), nf=int(weight.shape[1]))
    elif isinstance(layer, (nn.LayerNorm, *_RMS)) and isinstance(weight, torch.Tensor):
        vars(layer)["normalized_shape"] = (int(weight.shape[0]),)
    elif isinstance(layer, nn.MultiheadAttention) and getattr(layer, "width_free", False):
        layer.embed_dim = layer.kdim = layer.vdim = int(layer.in_proj_weight.shape[1])
    elif isinstance(layer, nn.modules.conv._ConvNd) and isinstance(weight, torch.Tensor):
        if not layer.transposed and layer.groups == layer.in_channels == layer.out_channels > 1:
            layer.groups = int(weight.shape[0])  # depthwise: one group a channel, whatever the width
        outs, ins = (1, 0) if layer.transposed else (0, 1)
        layer.out_channels = int(weight.shape[outs]) * (layer.groups if layer.transposed else 1)
        layer.in_channels = int(weight.shape[ins]) * (1 if layer.transposed else layer.groups)
    elif isinstance(layer, nn.modules.batchnorm._BatchNorm) and isinstance(weight, torch.Tensor):
        layer.num_features = int(weight.shape[0])


def is_factorized(module: nn.Module) -> bool:
    """Whether ``module`` is a pair made by :func:`~lightning_compress.surgery.factorize.factorized` (two thin Linear or Conv2d layers).

    Example:
        >>> pair = nn.Sequential(nn.Linear(6, 2, bias=False), nn.Linear(2, 4))
        >>> is_factorized(pair), is_factorized(nn.Linear(6, 4))
        (True, False)
    """
    if not isinstance(module, nn.Sequential) or len(module) != 2:
        return False
    first, second = module[0], module[1]
    return (isinstance(first, nn.Linear) and isinstance(second, nn.Linear) and first.bias is None) or (
        isinstance(first, nn.Conv2d) and isinstance(second, nn.Conv2d) and second.kernel_size == (1, 1)
    )
