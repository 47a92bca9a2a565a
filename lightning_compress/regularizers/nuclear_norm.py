"""The nuclear norm on each layer's weight matrix (Alvarez & Salzmann, NIPS 2017), applied by its prox."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from lightning_compress._checks import ArgumentError, check_nonneg
from lightning_compress.functional import as_matrix, nuclear_norm, singular_value_threshold
from lightning_compress.regularizers.base import AttachedRegularizer
from lightning_compress.surgery import LayerSelector, check_selectors, is_factorized, low_rank_layers

__all__ = ["NuclearNorm"]


class NuclearNorm(AttachedRegularizer):
    r"""``sum_l tau_l ||W_l||_*`` over the Linear and Conv2d layers (conv weights as ``out x in*kh*kw``).

    Its prox, singular value thresholding, leaves each weight at a lower rank; a layer whose rank falls
    below the break-even rank can then be split into two thin layers
    (:func:`~lightning_compress.surgery.factorize_layer`). The output layer, grouped convolutions and
    layers already split are left alone.

    Args:
        strength: :math:`\tau`, the default strength of every layer.
        layer_strengths: Name pattern -> strength, overriding ``strength`` for matching layers.
        include: Only layers matching these name patterns or module types.
        exclude: Never these layers.
        randomized_svd: From the second prox on, a randomized SVD of about the rank the last prox left
            where that is faster (see :func:`~lightning_compress.functional.singular_value_threshold`);
            ``False``: the exact prox every time.

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> model = LeNet300100(hidden=(16, 8)); reg = NuclearNorm(strength=10.0)
        >>> reg.attach(model, torch.zeros(1, 1, 28, 28))
        >>> reg.prox_(step=0.1)
        >>> reg.ranks
        {'1': 0, '3': 0}
    """

    def __init__(
        self,
        strength: float = 1e-3,
        *,
        layer_strengths: Mapping[str, float] | None = None,
        include: Sequence[LayerSelector] | None = None,
        exclude: Sequence[LayerSelector] = (),
        randomized_svd: bool = True,
    ) -> None:
        super().__init__()
        self.randomized_svd = randomized_svd
        self.strength = check_nonneg(strength, "strength")
        self.layer_strengths = {
            str(k): check_nonneg(v, f"layer_strengths[{k!r}]") for k, v in (layer_strengths or {}).items()
        }
        check_selectors(include, exclude)
        self.include = list(include) if include else None
        self.exclude = list(exclude)
        self.ranks: dict[str, int] = {}
        self._layers: list[tuple[str, nn.Linear | nn.Conv2d, float]] = []

    def __repr__(self) -> str:
        return f"NuclearNorm(strength={self.strength})"

    def layer_strength(self, name: str) -> float:
        """The strength of layer ``name`` (``layer_strengths``' first match, else ``strength``)."""
        return next(
            (v for p, v in self.layer_strengths.items() if fnmatch.fnmatchcase(name, p)), self.strength
        )

    def _build(self, model: nn.Module, x: Any) -> None:
        """Find the layers to regularize (after any shape change): every Linear and ``groups=1`` Conv2d
        that ``include``/``exclude`` select, the output layer and already split pairs left out."""
        split = {n for n, m in model.named_modules() if is_factorized(m)}
        try:
            names = low_rank_layers(model, self.include, self.exclude, x)
        except ArgumentError as err:
            if not split or "leave no" not in str(err):
                raise
            names = []  # every selected layer is split already
        layers = [
            (name, cast(nn.Linear | nn.Conv2d, model.get_submodule(name)), self.layer_strength(name))
            for name in names
            if name.rpartition(".")[0] not in split
        ]
        if not layers and not split:  # once every layer is split, there is nothing left to do
            raise ValueError("no layer to regularize: include/exclude leave no Linear or Conv2d layer")
        for pattern in self.layer_strengths:
            if not any(fnmatch.fnmatchcase(n, pattern) for n, _, _ in layers):
                raise ArgumentError(
                    "layer_strengths", f"layer_strengths pattern {pattern!r} matches no layer"
                )
        self._layers = layers

    @torch.no_grad()
    def prox_(self, step: float) -> None:
        """Singular value thresholding of every layer by ``step`` times its strength, in place."""
        if step == 0.0:
            return
        self.refresh()
        for name, layer, tau in self._layers:
            if tau > 0:
                hint = self.ranks.get(name) if self.randomized_svd else None
                shrunk, rank = singular_value_threshold(layer.weight, step * tau, rank_hint=hint)
                layer.weight.copy_(shrunk)
                self.ranks[name] = rank

    @torch.no_grad()
    def penalty(self) -> torch.Tensor:
        """The penalty at full strength."""
        self.refresh()
        total = torch.zeros(())
        for _, layer, tau in self._layers:
            total = total + tau * nuclear_norm(layer.weight).cpu()
        return total

    @torch.no_grad()
    def add_subgradient_(self, scale: float = 1.0) -> None:
        """Add ``scale * tau * U V^T`` (the subgradient of the nuclear norm, on the nonzero values) to grads."""
        self.refresh()
        for _, layer, tau in self._layers:
            if layer.weight.grad is None or tau == 0:
                continue
            u, s, vh = torch.linalg.svd(as_matrix(layer.weight), full_matrices=False)
            keep = s > 0
            layer.weight.grad.add_((u[:, keep] @ vh[keep]).reshape(layer.weight.shape), alpha=scale * tau)

    def weight(self, name: str) -> torch.Tensor:
        """The weight of regularized layer ``name``."""
        self.refresh()
        return next(layer.weight for n, layer, _ in self._layers if n == name)

    def layer_names(self) -> list[str]:
        """The regularized layers' names."""
        self.refresh()
        return [name for name, _, _ in self._layers]

    def metrics(self) -> dict[str, float]:
        """``penalty`` and, after a prox, each layer's rank (``rank/<layer>``)."""
        out = {"penalty": float(self.penalty())}
        out.update({f"rank/{name}": float(rank) for name, rank in self.ranks.items()})
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"ranks": dict(self.ranks)}  # a resumed run starts from the same rank hints

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ranks = {str(k): int(v) for k, v in state.get("ranks", {}).items()}
        self._version = -1
