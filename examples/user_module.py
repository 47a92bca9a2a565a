"""Compress your own LightningModule: group lasso during fit, neurons removed, exported as plain PyTorch.

The module below is written the way a Lightning user writes one: no ``example_input_array`` (the first
training batch gives it), a dict batch, torchmetrics. The only line from this library in the class is the
``CompressibleMixin`` base, so ``load_from_checkpoint`` rebuilds the smaller shapes.

    python examples/user_module.py --out runs/example      # about a minute on 2 CPU cores

It trains on Fashion-MNIST (the IDX files, e.g. Debian's ``dataset-fashion-mnist``), exports the result,
and checks in a fresh Python that cannot import this package that the exported program gives the same
outputs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lightning_compress import CompressibleMixin, GroupSparsity, StructuredPruning, export_model


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path) as fh:
        data = fh.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class FashionMNIST(Dataset):
    def __init__(self, folder: Path, split: str, limit: int | None = None) -> None:
        prefix = "train" if split == "train" else "t10k"
        images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")[:limit]
        self.images = (torch.from_numpy(images.copy()).float() / 255.0 - 0.286) / 0.353
        self.labels = torch.from_numpy(
            read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")[:limit].copy()
        ).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i].unsqueeze(0), "label": self.labels[i]}


class UserNet(CompressibleMixin, pl.LightningModule):
    def __init__(self, hidden: int = 300, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 100),
            nn.ReLU(),
            nn.Linear(100, 10),
        )
        self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = F.cross_entropy(self(batch["image"]), batch["label"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_acc(self(batch["image"]), batch["label"])
        self.log("val_acc", self.val_acc, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


# runs in a Python where ``import lightning_compress`` fails: only torch loads the exported files
CHECK_WITHOUT_PACKAGE = """
import sys, json, torch
sys.modules["lightning_compress"] = None
program = torch.export.load(sys.argv[1] + "/model.pt2").module()
x = torch.load(sys.argv[1] + "/probe.pt")
print(json.dumps({"max_abs_diff": (program(x) - torch.load(sys.argv[1] + "/expected.pt")).abs().max().item()}))
"""


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--out", type=Path, default=Path("runs/example"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=20000)
    args = parser.parse_args(argv)
    pl.seed_everything(0, verbose=False)
    train = DataLoader(FashionMNIST(args.data, "train", args.train_images), batch_size=128, shuffle=True)
    val = DataLoader(FashionMNIST(args.data, "test", 2000), batch_size=500)

    model = UserNet()
    callbacks = [GroupSparsity(strength=2e-3), StructuredPruning(every_n_epochs=1)]
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        callbacks=callbacks,
        default_root_dir=args.out,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )
    trainer.fit(model, train, val)
    ckpt = args.out / "final.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=False)
    acc = trainer.validate(model, val, verbose=False)[0]["val_acc"]

    reloaded = UserNet.load_from_checkpoint(ckpt)  # the user's own class: shapes rebuilt from the history
    probe = next(iter(val))["image"][:64]
    model.eval(), reloaded.eval()
    with torch.no_grad():
        expected = model(probe)
        reload_diff = (reloaded(probe) - expected).abs().max().item()
    export_model(model, args.out / "export", probe[:1])
    torch.save(probe, args.out / "export" / "probe.pt")
    torch.save(expected, args.out / "export" / "expected.pt")
    check = subprocess.run(
        [sys.executable, "-c", CHECK_WITHOUT_PACKAGE, str(args.out / "export")],
        capture_output=True,
        text=True,
        check=True,
    )
    result = {
        "val_acc": round(float(acc), 4),
        "widths": [m.out_features for m in model.net if isinstance(m, nn.Linear)],
        "params": sum(p.numel() for p in model.net.parameters()),
        "dense_params": sum(p.numel() for p in UserNet().net.parameters()),
        "reload_max_abs_diff": reload_diff,
        "export_max_abs_diff": json.loads(check.stdout.strip().splitlines()[-1])["max_abs_diff"],
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
