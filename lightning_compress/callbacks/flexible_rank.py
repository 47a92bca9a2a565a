"""Train one model that runs at any rank after training (Yaguchi et al., Decomposable-Net, IJCAI 2021)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

import lightning.pytorch as pl
import torch

from lightning_compress._checks import ArgumentError, check_int
from lightning_compress.callbacks._common import TracingCallback, check_input_key, example_inputs
from lightning_compress.callbacks._flexible_passes import (
    average_grads,
    check_settings,
    log_curve,
    norm_stats,
    restore_norm_stats,
    side_pass,
)
from lightning_compress.functional.flexible_rank import global_ranks, match_norm
from lightning_compress.surgery import (
    LayerSelector,
    flexible_layers,
    low_rank_layers,
    make_flexible,
    make_plain,
)

__all__ = ["FlexibleRank"]


class FlexibleRank(TracingCallback):
    r"""Train the full-rank model and its low-rank versions together, so that any size can be taken after
    training (:func:`~lightning_compress.surgery.set_size`, ``lightning-compress sizes``) without retraining.

    Each training step, after the usual backward pass of the full model, a rank ratio ``rho`` is drawn
    from ``ratio_range``; one threshold on the singular values of all chosen layers pooled keeps the
    ``rho`` share of them (at least ``min_rank`` per layer); ``training_step`` runs again on the same batch
    with every chosen layer at its rank (its logging off, BatchNorm running statistics left as they
    were), and the gradients are mixed: ``(1 - alpha) g_full + alpha g_low``, the low-rank gradient of
    each chosen weight rescaled to the full-rank one's norm. Under DDP the low-rank gradients are
    averaged over processes; ``rho`` comes from ``seed`` and the step, so every process (and a resumed
    run) draws the same. While the fit runs the chosen layers are flexible layers (the same parameters
    and state dict); they are plain again when it ends.

    Args:
        ratio_range: ``(low, high)``: the range ``rho`` is drawn from (uniformly), ``0 < low <= high <= 1``.
            Cover the sizes you will take: a ratio keeps that share of all singular values.
        alpha: Weight of the low-rank loss, in ``[0, 1]`` (0: plain training).
        min_rank: Smallest rank of any layer.
        eps: Clip of the squared singular-value ratios in the exact gradient, in ``(0, 1)``.
        grad: ``"projected"``: the low-rank layers run as two thin products and the gradient reaches the
            weight through its image in the kept right-singular basis (the cost of a rank-``r`` layer);
            ``"exact"``: the gradient through the truncated SVD (the paper's, with its clip).
        svd_every: Recompute the SVDs every this many steps; in between the weights are projected on the
            last ones' subspaces.
        draw: How ``rho`` is drawn from ``ratio_range``: ``"uniform"`` (the paper's) or ``"log_uniform"``
            (as many steps between 1% and 10% as between 10% and 100%).
        passes: ``"both"``: every step trains the full and the low-rank model (the paper's, two passes);
            ``"alternate"``: each step trains one of them, the low-rank one with probability ``alpha``
            (one pass, cheaper than plain training), its gradient matched to the full-rank gradients'
            running norm.
        every_n_steps: With ``passes="both"``, train the low-rank model on every this many steps only
            (plain steps between: cheaper).
        curve: Shares of the parameters at which the model is taken at fit end (``set_size``, BatchNorm
            re-estimated) and its validation accuracy logged: ``flexible_rank/val_acc@<share>`` and, with
            W&B, a table and a line chart (classification batches ``(input, class)``).
        include: Layers to train at low rank (name patterns or module types; default every Linear and
            ``groups=1`` Conv2d but the output layer).
        exclude: Layers left full rank.
        seed: Seed of the ``rho`` draws.
        input_key: Key of the model input in a dict batch (default: the usual input keys).
        example_input: An input to trace the model with, when it has no ``example_input_array``.

    Example:
        >>> FlexibleRank(ratio_range=(0.05, 0.5))
        FlexibleRank(ratio_range=(0.05, 0.5), alpha=0.5, grad='exact', svd_every=48)
    """

    def __init__(
        self,
        ratio_range: Sequence[float] = (0.02, 0.3),
        alpha: float = 0.5,
        min_rank: int = 5,
        eps: float = 0.99,
        grad: Literal["projected", "exact"] = "exact",
        svd_every: int = 48,
        draw: Literal["uniform", "log_uniform"] = "log_uniform",
        passes: Literal["both", "alternate"] = "both",
        every_n_steps: int = 3,
        curve: Sequence[float] = (),
        include: Sequence[LayerSelector] | None = None,
        exclude: Sequence[LayerSelector] = (),
        seed: int = 0,
        input_key: str | None = None,
        example_input: Any = None,
    ) -> None:
        low, high = check_settings(ratio_range, alpha, eps, grad, draw, passes)
        self.draw, self.passes = draw, passes
        self.curve = [float(c) for c in curve]
        if any(not 0 < c <= 1 for c in self.curve):
            raise ArgumentError("curve", f"curve must hold shares in (0, 1], got {list(curve)!r}")
        self._low_step = False
        self._norms: dict[str, torch.Tensor] = {}
        self._saved_norm_stats: list[dict[str, torch.Tensor]] = []
        self.ratio_range = (low, high)
        self.alpha, self.eps, self.grad = float(alpha), float(eps), grad
        self.min_rank = check_int(min_rank, "min_rank", 1)
        self.svd_every = check_int(svd_every, "svd_every", 1)
        self.every_n_steps = check_int(every_n_steps, "every_n_steps", 1)
        self.seed = check_int(seed, "seed", 0)
        self.include, self.exclude = include, exclude
        self.batch_key = self.input_key = check_input_key(input_key)
        self.example_input = example_input
        self._batch: Any = None
        self.last_ratio: float | None = None
        self.last_ranks: dict[str, int] = {}
        self._refreshed: int | None = None
        self._layers: dict[str, Any] = {}
        self._resumed_factors: dict[str, tuple[torch.Tensor, ...]] = {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(ratio_range={self.ratio_range}, alpha={self.alpha}, grad={self.grad!r}, "
            f"svd_every={self.svd_every})"
        )

    @property
    def state_key(self) -> str:
        return self._generate_state_key(ratio_range=self.ratio_range, seed=self.seed)

    def preflight(self, pl_module: pl.LightningModule, max_epochs: int | None = None) -> None:
        """Before any work: ``include`` / ``exclude`` that select no layer are one line."""
        if pl_module.example_input_array is not None:
            low_rank_layers(pl_module, self.include, self.exclude, example_inputs(pl_module))

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and trainer.accumulate_grad_batches != 1:
            raise ArgumentError(
                "accumulate_grad_batches",
                "FlexibleRank mixes each batch's two gradients: use accumulate_grad_batches=1",
            )

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
        if not flexible_layers(pl_module):
            names = low_rank_layers(pl_module, self.include, self.exclude, example_inputs(pl_module))
            make_flexible(pl_module, names, grad=self.grad, eps=self.eps)
            self._layers = flexible_layers(pl_module)
            for name, factors in self._resumed_factors.items():
                self._layers[name].factors = cast(Any, tuple(f.to(pl_module.device) for f in factors))
            self._resumed_factors = {}
        self._batch = (batch, batch_idx)
        if self.passes == "alternate" and self.alpha > 0:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + trainer.global_step)
            self._low_step = float(torch.rand(2, generator=generator)[1]) < self.alpha
            if self._low_step:  # this step's training_step runs at low rank
                layers = flexible_layers(pl_module)
                for name, rank in self._ranks(trainer.global_step, layers).items():
                    layers[name].rank = rank
                self._saved_norm_stats = norm_stats(pl_module)

    def _ranks(self, step: int, layers: dict[str, Any]) -> dict[str, int]:
        stale = self._refreshed is None or step - self._refreshed >= self.svd_every or step < self._refreshed
        if stale or any(layer.factors is None for layer in layers.values()):
            for layer in layers.values():
                layer.refresh()
            self._refreshed = step
        self.last_ratio = self.ratio_at(step)
        spectra = {name: layer.factors[1] for name, layer in layers.items() if layer.factors is not None}
        self.last_ranks = global_ranks(spectra, self.last_ratio, self.min_rank)
        return self.last_ranks

    def _alternate(self, pl_module: pl.LightningModule, layers: dict[str, Any]) -> None:
        """One pass per step: a low-rank step's weight gradients take the full-rank steps' running norms."""
        with torch.no_grad():
            for key, layer in layers.items():
                grad = layer.weight.grad
                if grad is None:
                    continue
                if not self._low_step:
                    norm = grad.norm()
                    self._norms[key] = norm if key not in self._norms else 0.9 * self._norms[key] + 0.1 * norm
                elif key in self._norms:
                    grad.mul_(self._norms[key] / grad.norm().clamp(min=1e-15))
        if self._low_step:
            for layer in layers.values():
                layer.rank = None
            restore_norm_stats(pl_module, self._saved_norm_stats)
            self._low_step = False

    def ratio_at(self, step: int) -> float:
        """The ``rho`` of training step ``step`` (the same in every process and after a resume)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        low, high = self.ratio_range
        u = float(torch.rand((), generator=generator))
        if self.draw == "log_uniform":
            return float(low * (high / low) ** u)
        return low + (high - low) * u

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        layers = flexible_layers(pl_module)
        if self.alpha == 0 or self._batch is None or not layers:
            return
        if self.passes == "alternate":
            self._alternate(pl_module, layers)
            return
        if trainer.global_step % self.every_n_steps:
            return
        ranks = self._ranks(trainer.global_step, layers)
        params = [p for p in pl_module.parameters() if p.requires_grad and p.grad is not None]
        found = self._low_rank_grads(trainer, pl_module, layers, ranks, params)
        self._batch = None
        if found is None:
            return
        loss, grads = found
        average_grads(grads)
        weights = {id(layer.weight) for layer in layers.values()}
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                if g is None or p.grad is None:
                    continue
                if id(p) in weights:
                    g = match_norm(g, p.grad)
                p.grad.mul_(1 - self.alpha).add_(g, alpha=self.alpha)
        pl_module.log("flexible_rank/low_rank_loss", loss, on_step=False, on_epoch=True)

    def _low_rank_grads(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        layers: dict[str, Any],
        ranks: dict[str, int],
        params: list[torch.nn.Parameter],
    ) -> tuple[torch.Tensor, list[Any]] | None:
        """The low-rank loss and its gradients (BatchNorm statistics restored only after the backward,
        which reads them)."""
        batch, batch_idx = self._batch
        for name, layer in layers.items():
            layer.rank = ranks[name]
        try:
            with side_pass(pl_module):
                with trainer.precision_plugin.forward_context():
                    out = pl_module.training_step(batch, batch_idx)
                if isinstance(out, dict):
                    out = out.get("loss")
                if not (isinstance(out, torch.Tensor) and out.requires_grad):
                    return None
                scaler = getattr(trainer.precision_plugin, "scaler", None)  # fp16: grads are scaled alike
                scaled = scaler.scale(out) if scaler is not None else out
                return out.detach(), list(torch.autograd.grad(scaled, params, allow_unused=True))
        finally:
            for layer in layers.values():
                layer.rank = None

    def state_dict(self) -> dict[str, Any]:
        """The settings a size taken later needs (``min_rank``), and what a resumed fit continues from: the
        last SVDs and when they were taken, the running gradient norms."""
        return {
            "min_rank": self.min_rank,
            "ratio_range": list(self.ratio_range),
            "refreshed": self._refreshed,
            "factors": {
                n: f
                for n, layer in self._layers.items()
                if (f := getattr(layer, "factors", None)) is not None
            }
            or self._resumed_factors,
            "norms": dict(self._norms),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._refreshed = state_dict.get("refreshed")
        self._norms = dict(state_dict.get("norms", {}))
        self._resumed_factors = {n: tuple(f) for n, f in state_dict.get("factors", {}).items()}

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.curve and trainer.is_global_zero:
            log_curve(trainer, pl_module, self.curve, self.min_rank, self.input_key)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if flexible_layers(pl_module):  # the fit's end (a test or predict after it finds them plain)
            self._resumed_factors = {
                n: f for n, layer in self._layers.items() if (f := layer.factors) is not None
            }
            make_plain(pl_module)
