"""Runs from a config, shared by the command line and sweep trials: training, and compressing a checkpoint."""

from lightning_compress.run.compress import compress_checkpoint, load_checkpoint, load_user_checkpoint
from lightning_compress.run.export import export_checkpoint
from lightning_compress.run.train import make_run_dir, preflight, train

__all__ = [
    "compress_checkpoint",
    "export_checkpoint",
    "load_checkpoint",
    "load_user_checkpoint",
    "make_run_dir",
    "preflight",
    "train",
]
