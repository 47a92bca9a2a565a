"""What named layers see as input: one batch of it, or its second moments streamed over a data loader.

Methods that calibrate on data (DALR's ``X X^T``, bias compensation's input mean) read layer inputs
through :func:`input_statistics`: it never stores activations, only running sums, so memory does not grow
with the number of samples, and under ``torch.distributed`` the sums are all-reduced so every rank holds
the same statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lightning_compress.surgery.base.conv1d import is_conv1d
from lightning_compress.surgery.base.example import model_input
from lightning_compress.surgery.base.tracing import kept_modes

__all__ = ["InputStatistics", "capture_inputs", "input_statistics", "layer_input_rows", "paired_statistics"]


def _forward(model: nn.Module, inputs: Any) -> None:
    model(*inputs) if isinstance(inputs, tuple) else model(inputs)


def capture_inputs(model: nn.Module, names: Iterable[str], example_inputs: Any) -> dict[str, torch.Tensor]:
    """The input each named layer sees for ``example_inputs`` (model in eval mode, no grad, modes restored).

    Example:
        >>> model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
        >>> capture_inputs(model, ["2"], torch.zeros(4, 3))["2"].shape
        torch.Size([4, 2])
    """
    seen: dict[str, torch.Tensor] = {}
    handles = []
    for name in set(names):

        def hook(_: nn.Module, args: tuple[Any, ...], name: str = name) -> None:
            seen[name] = args[0].detach()

        handles.append(model.get_submodule(name).register_forward_pre_hook(hook))
    try:
        with torch.no_grad(), kept_modes(model):
            model.eval()
            _forward(model, example_inputs)
    finally:
        for h in handles:
            h.remove()
    return seen


def layer_input_rows(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A layer's input as the rows its weight matrix multiplies: ``(samples, fan_in)``.

    A Linear's input flattened over its leading dimensions; a Conv2d's input unfolded into patches with
    the layer's kernel size, stride, padding and dilation (``groups=1`` only), so that the conv is
    ``rows @ weight.flatten(1).T``.

    Example:
        >>> conv = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        >>> layer_input_rows(conv, torch.zeros(5, 2, 8, 8)).shape  # 5 images x 4 x 4 positions, 2*3*3 inputs
        torch.Size([80, 18])
    """
    if isinstance(layer, nn.Linear) or is_conv1d(layer):
        return x.reshape(-1, x.shape[-1])
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1 or not isinstance(layer.padding, tuple):
            raise ValueError(
                f"input statistics of Conv2d need groups=1 and numeric padding, got groups={layer.groups}, "
                f"padding={layer.padding!r}"
            )
        if layer.padding_mode != "zeros":
            x = F.pad(x, [p for p in reversed(layer.padding) for _ in range(2)], mode=layer.padding_mode)
            padding: tuple[int, ...] = (0, 0)
        else:
            padding = layer.padding
        patches = F.unfold(
            x, layer.kernel_size, dilation=layer.dilation, padding=padding, stride=layer.stride
        )  # (batch, fan_in, positions)
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])
    raise ValueError(f"input statistics support Linear and Conv2d layers, got {type(layer).__name__}")


def _fan_in(layer: nn.Module) -> int:
    if isinstance(layer, nn.Linear):
        return layer.in_features
    if is_conv1d(layer):
        return int(cast(torch.Tensor, layer.weight).shape[0])
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        return layer.in_channels * kh * kw
    raise ValueError(f"input statistics support Linear and Conv2d layers, got {type(layer).__name__}")


@dataclass
class InputStatistics:
    """Running sums of one layer's input rows (see :func:`layer_input_rows`).

    Attributes:
        xxt: ``sum_i x_i x_i^T``, ``(fan_in, fan_in)``, in float64 (of ``P x_i`` when projected through
            ``P``; empty when only the mean was asked for).
        sum: ``sum_i x_i``, ``(fan_in,)``, in float64 (never projected).
        count: Number of rows summed.
        samples: Number of samples (first input dimension) seen: ``count / samples`` rows per sample.

    Example:
        >>> s = InputStatistics(torch.zeros(2, 2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
        >>> s.add_(torch.tensor([[1.0, 2.0], [3.0, 4.0]])); s.count, s.mean.tolist()
        (2, [2.0, 3.0])
    """

    xxt: torch.Tensor
    sum: torch.Tensor
    count: int = 0
    samples: int = 0
    through: torch.Tensor | None = None

    @property
    def mean(self) -> torch.Tensor:
        """The mean input row."""
        return self.sum / max(self.count, 1)

    def add_(self, rows: torch.Tensor) -> None:
        self.sum.add_(rows.sum(0, dtype=self.sum.dtype))
        self.count += rows.shape[0]
        if self.xxt.numel():
            rows = rows.to(self.xxt)
            if self.through is not None:
                rows = rows @ self.through.T
            self.xxt.addmm_(rows.T, rows)


def _model_inputs(
    batches: Iterable[Any],
    to_inputs: Callable[[Any], Any] | None,
    max_batches: int | None,
    dev: torch.device | None,
    progress: bool,
) -> Iterator[Any]:
    """Each batch's model input on ``dev``: ``to_inputs(batch)``, or the batch, or its first item."""
    for i, batch in enumerate(tqdm(batches, desc="input statistics", disable=None if progress else True)):
        if max_batches is not None and i >= max_batches:
            break
        x = to_inputs(batch) if to_inputs else model_input(batch)
        if dev is not None:
            x = x.to(dev) if isinstance(x, torch.Tensor) else tuple(t.to(dev) for t in x)
        yield x


def _all_reduce(stats: dict[str, InputStatistics]) -> None:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for s in stats.values():
        counts = torch.tensor([float(s.count), float(s.samples)], dtype=torch.float64, device=s.xxt.device)
        for tensor in (s.xxt, s.sum, counts):
            dist.all_reduce(tensor)
        s.count, s.samples = (int(c) for c in counts.tolist())


@torch.no_grad()
def input_statistics(
    model: nn.Module,
    names: Sequence[str],
    batches: Iterable[Any],
    *,
    to_inputs: Callable[[Any], Any] | None = None,
    max_batches: int | None = None,
    device: torch.device | str | None = None,
    through: Mapping[str, torch.Tensor] | None = None,
    second_moments: bool = True,
    progress: bool = False,
) -> dict[str, InputStatistics]:
    """Stream ``X^T X`` and the input sum of the named layers over ``batches`` (eval mode, no grad).

    Only running sums are kept: memory is ``fan_in^2`` per layer whatever the number of samples. Under
    ``torch.distributed`` the sums are all-reduced, so every rank returns the same statistics (every rank
    must call this, with its own shard of the data).

    Args:
        model: The network (its train/eval modes are restored afterwards).
        names: Qualified names of Linear or Conv2d layers.
        batches: A data loader or any iterable of batches.
        to_inputs: Batch -> model input; default: :func:`~lightning_compress.surgery.base.example.model_input`
            (a tensor, the first item of a tuple or list, a dict's ``input``/``image``/``pixel_values``...).
        max_batches: Stop after this many batches.
        device: Where to run the model's forward passes (default: where its first parameter is).
        through: Layer name -> matrix ``P`` (``q x fan_in``): sum ``(P x)(P x)^T`` (``q x q``) instead
            of ``x x^T``, e.g. ``P = W`` for the output moments ``Z Z^T`` when ``fan_in`` is large.
        second_moments: ``False`` sums only the mean (``xxt`` stays empty).
        progress: Show a progress bar over the batches.

    Example:
        >>> model = nn.Sequential(nn.Linear(3, 2))
        >>> data = [(torch.ones(4, 3), None), (torch.ones(2, 3), None)]
        >>> stats = input_statistics(model, ["0"], data)
        >>> stats["0"].count, stats["0"].xxt[0, 0].item(), stats["0"].mean.tolist()
        (6, 6.0, [1.0, 1.0, 1.0])
    """
    layers = {name: model.get_submodule(name) for name in names}
    first = next(model.parameters(), None)
    dev = torch.device(device) if device is not None else (first.device if first is not None else None)
    stats = {}
    through = dict(through or {})
    if unknown := set(through) - set(layers):
        raise ValueError(f"'through' names layers not in 'names': {sorted(unknown)}")
    for name, layer in layers.items():  # made up front: every rank reaches every all-reduce
        n = _fan_in(layer)
        p = through.get(name)
        if p is not None and (p.ndim != 2 or p.shape[1] != n):
            raise ValueError(f"'through' matrix of {name!r} must be q x {n}, got {tuple(p.shape)}")
        q = 0 if not second_moments else (n if p is None else p.shape[0])
        stats[name] = InputStatistics(
            torch.zeros(q, q, dtype=torch.float64, device=dev),
            torch.zeros(n, dtype=torch.float64, device=dev),
            through=None if p is None else p.detach().to(device=dev, dtype=torch.float64),
        )

    def hook(layer: nn.Module, args: tuple[Any, ...], name: str) -> None:
        x = args[0].detach()
        stats[name].add_(layer_input_rows(layer, x))
        stats[name].samples += x.shape[0]

    handles = [
        layer.register_forward_pre_hook(lambda m, a, name=name: hook(m, a, name))
        for name, layer in layers.items()
    ]
    try:
        with kept_modes(model):
            model.eval()
            for x in _model_inputs(batches, to_inputs, max_batches, dev, progress):
                _forward(model, x)
    finally:
        for h in handles:
            h.remove()
    _all_reduce(stats)
    return stats


@torch.no_grad()
def paired_statistics(
    reference: nn.Module,
    model: nn.Module,
    name: str,
    batches: Iterable[Any],
    *,
    to_inputs: Callable[[Any], Any] | None = None,
    max_batches: int | None = None,
) -> tuple[InputStatistics, torch.Tensor]:
    """Layer ``name``'s input moments in ``model`` and their cross moments with ``reference``'s.

    Both models see the same batches (eval mode, no grad): returns the :class:`InputStatistics` of
    ``model``'s input rows ``x`` and ``sum_i x_ref,i x_i^T`` (``fan_in x fan_in``, float64), all-reduced
    under ``torch.distributed``. With ``reference`` the original network and ``model`` a partly compressed
    copy, a layer can be fitted to the original outputs from the inputs it will actually receive.

    Example:
        >>> net = nn.Sequential(nn.Linear(3, 2))
        >>> stats, cross = paired_statistics(net, net, "0", [torch.ones(4, 3)])
        >>> stats.count, torch.equal(cross, stats.xxt)
        (4, True)
    """
    seen: dict[int, torch.Tensor] = {}
    layers = [reference.get_submodule(name), model.get_submodule(name)]
    n = _fan_in(layers[1])
    first = next(model.parameters(), None)
    dev = first.device if first is not None else None
    stats = InputStatistics(
        torch.zeros(n, n, dtype=torch.float64, device=dev), torch.zeros(n, dtype=torch.float64, device=dev)
    )
    cross = torch.zeros(n, n, dtype=torch.float64, device=dev)
    handles = [
        layer.register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(i, a[0].detach()))
        for i, layer in enumerate(layers)
    ]
    try:
        with kept_modes(reference), kept_modes(model):
            reference.eval(), model.eval()
            for x in _model_inputs(batches, to_inputs, max_batches, dev, progress=False):
                _forward(reference, x)
                _forward(model, x)
                rows = layer_input_rows(layers[1], seen[1]).to(cross)
                stats.add_(rows)
                stats.samples += seen[1].shape[0]
                cross.addmm_(layer_input_rows(layers[0], seen[0]).to(cross).T, rows)
    finally:
        for h in handles:
            h.remove()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(cross)
    _all_reduce({name: stats})
    return stats, cross
