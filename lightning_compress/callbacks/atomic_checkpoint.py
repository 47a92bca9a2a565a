"""Checkpoints that are either written whole or not at all, and a checkpoint saved after every epoch."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

__all__ = ["AtomicCheckpointIO", "EpochCheckpoint"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the same folder, then renames it into place.

    A failed write (a full disk, a lost mount) leaves the previous checkpoint of that name untouched and
    raises an ``OSError`` naming the path: training stops at the first failed write instead of going on
    with nothing saved. Pass it to the Trainer: ``pl.Trainer(plugins=[AtomicCheckpointIO()])``.

    Example:
        >>> import torch
        >>> folder = Path(tempfile.mkdtemp())
        >>> AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, folder / "a.ckpt")
        >>> sorted(p.name for p in folder.iterdir())
        ['a.ckpt']
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            os.close(fd)
        except OSError as err:
            raise OSError(err.errno, f"cannot write checkpoint {target}: {err.strerror or err}") from err
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, target)
        except OSError as err:
            raise OSError(err.errno, f"cannot write checkpoint {target}: {err.strerror or err}") from err
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


class EpochCheckpoint(ModelCheckpoint):
    """``last.ckpt`` rewritten at the end of every training epoch, after the epoch's shape changes.

    Lightning runs checkpoint callbacks after all others, so a checkpoint holds the pruning (or any other
    shape change) done at that epoch's end, and ``trainer.fit(ckpt_path=...)`` resumes at the next epoch.

    Example:
        >>> EpochCheckpoint("runs/x/checkpoints").dirpath.endswith("checkpoints")
        True
    """

    def __init__(self, dirpath: str | os.PathLike[str], filename: str = "last") -> None:
        super().__init__(
            dirpath=Path(dirpath),
            filename=filename,
            monitor=None,
            save_top_k=1,
            every_n_epochs=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )
