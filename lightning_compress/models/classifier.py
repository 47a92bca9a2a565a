"""A LightningModule that trains any image classifier and reports accuracy, parameters and MACs."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lightning_compress.models.registry import MODELS, build_model
from lightning_compress.surgery.history import enable_history_restore
from lightning_compress.surgery.measure.size import count_params_and_macs

__all__ = ["OPTIMIZERS", "SCHEDULERS", "Classifier"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "cosine", "step")


class Classifier(pl.LightningModule):
    """Cross-entropy training of a classifier, with accuracy and size logging.

    Logs, once per epoch, ``train/loss_epoch``, ``train/acc``, ``val/loss``, ``val/acc``, ``test/loss``,
    ``test/acc`` and the model's ``size/params`` and ``size/macs`` (Torch-Pruning's counters, MACs per
    sample), so shrinking models show up in the curves; and ``train/loss_step`` every
    ``Trainer(log_every_n_steps=...)`` optimizer steps (0: never). Nothing else is logged per step: the
    epoch values are sums kept on the model's device (summed across processes at epoch end), so a step
    costs no host-device sync.

    Args:
        model: A module, or the name of an example model (``lenet300_100``, ``lenet5``, ``vgg_small``,
            ``resnet_small``). A name is stored in the hyperparameters, so ``load_from_checkpoint``
            rebuilds it; a module must be passed again when loading.
        model_kwargs: Arguments for a named model.
        num_classes: Number of classes.
        input_shape: Shape of one input sample (for counting MACs and the model summary).
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        lr: Learning rate.
        momentum: SGD momentum.
        weight_decay: L2 penalty coefficient (decoupled for AdamW).
        nesterov: Nesterov momentum for SGD.
        scheduler: ``"none"``, ``"cosine"`` (over ``max_epochs``) or ``"step"``.
        step_size: Epochs between LR drops for ``"step"``.
        gamma: LR factor per drop for ``"step"``.

    Example:
        >>> module = Classifier("lenet300_100", lr=0.05)
        >>> module(torch.zeros(4, 1, 28, 28)).shape
        torch.Size([4, 10])
        >>> module.size()
        {'params': 266610, 'macs': 267010}
    """

    def __init__(
        self,
        model: nn.Module | str = "lenet300_100",
        *,
        model_kwargs: dict[str, Any] | None = None,
        num_classes: int = 10,
        input_shape: Sequence[int] = (1, 28, 28),
        optimizer: str = "sgd",
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        scheduler: str = "cosine",
        step_size: int = 10,
        gamma: float = 0.1,
    ) -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown {optimizer=}; choose one of {OPTIMIZERS}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown {scheduler=}; choose one of {SCHEDULERS}")
        if not lr > 0 or lr == float("inf"):
            raise ValueError(f"lr must be a positive finite number, got {lr=}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum=}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay=}")
        if step_size <= 0 or not 0 < gamma <= 1:
            raise ValueError(f"need step_size > 0 and 0 < gamma <= 1, got {step_size=}, {gamma=}")
        if isinstance(model, str):
            if model not in MODELS and "." not in model:
                raise ValueError(f"unknown model {model!r}; choose one of {sorted(MODELS)} or an import path")
            self.save_hyperparameters()
            self.model = build_model(model, **dict(model_kwargs or {}))
        else:
            self.save_hyperparameters(ignore=["model"])
            self.model = model
        self.example_input_array = torch.zeros(1, *input_shape)
        # a checkpoint of a compressed model reshapes a freshly built one before its weights load
        enable_history_restore(self, lambda: torch.zeros(1, *input_shape, device=self.device))
        # per stage: (summed loss, correct predictions) on the model's device, and the sample count
        self._sums: dict[str, tuple[torch.Tensor, int]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def size(self) -> dict[str, int]:
        """The model's current parameter count and MACs per sample."""
        example = torch.zeros(1, *self.hparams["input_shape"], device=next(self.model.parameters()).device)
        params, macs = count_params_and_macs(self.model, example)
        return {"params": params, "macs": macs}

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        with torch.no_grad():
            stats = torch.stack((loss * len(y), (logits.argmax(1) == y).sum().to(loss.dtype)))
            if stage in self._sums:
                total, count = self._sums[stage]
                stats, y_count = stats + total, count + len(y)
            else:
                y_count = len(y)
            self._sums[stage] = (stats, y_count)
        if stage == "train":
            every = getattr(self._trainer, "log_every_n_steps", 0)  # set by the Trainer at init
            if every and (self.trainer.global_step + 1) % every == 0:
                self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def _log_epoch(self, stage: str) -> None:
        """The epoch's mean loss and accuracy over every process's samples."""
        if stage not in self._sums:
            return
        total, count = self._sums.pop(stage)
        sums = torch.cat((total, total.new_tensor([count])))
        if self._trainer is not None:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        loss, acc = sums[0] / sums[2], sums[1] / sums[2]
        self.log("train/loss_epoch" if stage == "train" else f"{stage}/loss", loss, prog_bar=stage == "val")
        self.log(f"{stage}/acc", acc, prog_bar=stage == "val")

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def _log_size(self) -> None:
        try:
            size = self.size()
        except RuntimeError as err:  # e.g. torch.nn.utils.prune masks: the counter cannot copy the model
            rank_zero_warn(f"size/params and size/macs not logged: the model cannot be counted now ({err})")
            return
        for key, value in size.items():
            self.log(f"size/{key}", float(value), sync_dist=False)

    def on_train_epoch_start(self) -> None:
        self._sums.pop("train", None)

    def on_validation_epoch_start(self) -> None:
        self._sums.pop("val", None)

    def on_test_epoch_start(self) -> None:
        self._sums.pop("test", None)

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")
        self._log_size()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")
        self._log_size()

    def configure_optimizers(self) -> Any:
        hp = SimpleNamespace(**self.hparams)
        params = self.model.parameters()
        optimizer: torch.optim.Optimizer
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay, nesterov=hp.nesterov
            )
        elif hp.optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            optimizer = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return optimizer
        scheduler: torch.optim.lr_scheduler.LRScheduler
        if hp.scheduler == "cosine":
            epochs = max(int(self.trainer.max_epochs or 1), 1)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        else:
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=hp.step_size, gamma=hp.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
