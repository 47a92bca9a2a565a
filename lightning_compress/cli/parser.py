"""The ``lightning-compress`` argument parser."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from lightning_compress import __version__
from lightning_compress.sweep import STORAGE_ENV

__all__ = ["build_parser"]

SHIPPED = Path(__file__).resolve().parent.parent  # the package folder: configs/ and sweeps/


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it has one the help text does not already say."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text
            or any(action.default is v for v in (None, False, argparse.SUPPRESS))
            or action.default == []
        ):
            return text
        return super()._get_help_string(action)


COMPRESS_OPTIONS = ("method", "include", "exclude", "ridge", "order", "data", "max_batches", "input_key")
"""The ``LowRankCompression`` arguments that ``compress`` takes as flags, beside the rank rule's."""


def _compress_flags(compress: argparse.ArgumentParser) -> None:
    """``compress``'s flags: the ``LowRankCompression`` callback's arguments (names, types, choices,
    defaults and help from its signature and docstring), one rank rule of them required."""
    from lightning_compress.callbacks import LowRankCompression
    from lightning_compress.config.sections import add_flags
    from lightning_compress.surgery import RANK_RULES

    compress.add_argument("--out", required=True, help="the compressed checkpoint to write")
    add_flags(compress, LowRankCompression, RANK_RULES, defaults=False, exclusive_required=True)
    add_flags(compress, LowRankCompression, COMPRESS_OPTIONS)


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its errors on one line (argparse prints the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser(derived: bool = True) -> argparse.ArgumentParser:
    """The ``lightning-compress`` argument parser: one subcommand per entry point.

    ``derived=False`` leaves out the flags derived from the callbacks (no torch import), for commands
    that do not read them.

    Example:
        >>> build_parser().parse_args(["neurons", "final.ckpt"]).relative_threshold
        0.001
    """
    fmt = _Help
    parser = _Parser(
        prog="lightning-compress",
        description="Train and compress networks with Lightning.",
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train and test a model from a config, write checkpoint and summary",
        formatter_class=fmt,
    )
    train.add_argument(
        "config", help=f"YAML run config: a file, or a shipped example's name ({SHIPPED / 'configs'})"
    )
    train.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optimizer.lr=0.05")
    sweep = sub.add_parser(
        "sweep", help="run, resume or join a multi-objective Optuna sweep", formatter_class=fmt
    )
    sweep.add_argument("sweep", help=f"sweep file, or a shipped example's name ({SHIPPED / 'sweeps'})")
    sweep.add_argument("overrides", nargs="*", help="key=value overrides of the sweep file")
    sweep.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local worker processes (their torch threads: --threads-per-worker)",
    )
    sweep.add_argument(
        "--storage",
        default=None,
        help=f"storage URL (journal file path or postgresql://...; default: ${STORAGE_ENV} or the sweep "
        "file's); a database password can stay out of the command line: PGPASSWORD, ~/.pgpass or PGPASSFILE",
    )
    sweep.add_argument("--n-trials", type=int, default=None, help="trial budget (default: the sweep file's)")
    sweep.add_argument(
        "--worker-offset", type=int, default=0, help="first worker index (sampler seeds) on this machine"
    )
    sweep.add_argument(
        "--threads-per-worker",
        type=int,
        default=None,
        help="torch threads per worker (default: cores / workers)",
    )
    report = sub.add_parser(
        "report", help="Pareto table, hypervolume and plots of a sweep", formatter_class=fmt
    )
    report.add_argument("sweep", help="sweep file, or a shipped example's name")
    report.add_argument(
        "overrides", nargs="*", help="key=value overrides of the sweep file, as given to 'sweep'"
    )
    report.add_argument(
        "--storage", default=None, help=f"storage URL (default: ${STORAGE_ENV} or the sweep's)"
    )
    compress = sub.add_parser(
        "compress",
        help="split a trained checkpoint's layers in two on calibration data (DALR, SVD)",
        formatter_class=fmt,
    )
    compress.add_argument(
        "checkpoint",
        help="a checkpoint of 'train' (final.ckpt or last.ckpt), or of your own class (--model-class)",
    )
    compress.add_argument(
        "--model-class",
        default=None,
        help="your LightningModule's import path (package.module.Class); its data comes from --config",
    )
    compress.add_argument(
        "--config", default=None, help="the run config (default: the run folder's config.yaml)"
    )
    if derived:
        _compress_flags(compress)
    else:  # the callback's flags need torch and Lightning: left out when another command runs
        compress.add_argument("--out", required=True)
    compress.add_argument("--finetune-epochs", type=int, default=0, help="fine-tune after compressing")
    compress.add_argument("--finetune-lr", type=float, default=None, help="learning rate of the fine-tune")
    export = sub.add_parser(
        "export",
        help="write a checkpoint as plain PyTorch: a torch.export program and a state dict",
        formatter_class=fmt,
    )
    export.add_argument("checkpoint", help="a checkpoint of 'train', or of your own class (--model-class)")
    export.add_argument(
        "--out", required=True, help="the folder to write (model.pt2, state_dict.pt, export.json)"
    )
    export.add_argument(
        "--model-class",
        default=None,
        help="your LightningModule's import path (package.module.Class), built from the saved hyperparameters",
    )
    export.add_argument(
        "--config", default=None, help="the run config (default: the run folder's config.yaml)"
    )
    export.add_argument(
        "--no-normalization",
        action="store_true",
        help="leave the data's input normalization out of the program (default: a 'train' checkpoint's "
        "program takes raw 0-1 pixels)",
    )
    export.add_argument(
        "--static-batch", action="store_true", help="export for the example's batch size only"
    )
    sizes = sub.add_parser(
        "sizes",
        help="take a flexible-rank checkpoint at many sizes: a model per size, accuracy against size",
        formatter_class=fmt,
    )
    sizes.add_argument("checkpoint", help="a checkpoint of 'train' (trained with flexible_rank, or any)")
    budget = sizes.add_mutually_exclusive_group(required=True)
    for measure, meaning in (
        ("params", "shares (<= 1) of the dense model's parameters, or counts"),
        ("macs", "shares (<= 1) of the dense model's MACs per sample, or counts"),
        ("ratio", "shares of all layers' singular values kept"),
    ):
        budget.add_argument(f"--{measure}", type=float, nargs="+", default=None, help=f"the sizes: {meaning}")
    sizes.add_argument("--out", default=None, help="write each model, sizes.json and sizes.png here")
    sizes.add_argument(
        "--config", default=None, help="the run config (default: the run folder's config.yaml)"
    )
    sizes.add_argument(
        "--bn-batches",
        type=int,
        default=50,
        help="training batches that re-estimate BatchNorm statistics (0: keep the model's)",
    )
    sizes.add_argument(
        "--min-rank", type=int, default=None, help="smallest rank of a layer (default: the trained one's)"
    )
    neurons = sub.add_parser(
        "neurons", help="report zero / near-zero neurons per layer of a checkpoint", formatter_class=fmt
    )
    neurons.add_argument("checkpoint", help="a checkpoint of 'train', or of your own class (--model-class)")
    neurons.add_argument(
        "--model-class",
        default=None,
        help="your LightningModule's import path (package.module.Class), built from the saved hyperparameters",
    )
    neurons.add_argument(
        "--relative-threshold", type=float, default=1e-3, help="near zero: norm <= this x layer max"
    )
    return parser
