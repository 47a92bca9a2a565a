"""The ``lightning-compress`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from lightning_compress.config.load import ConfigError, load_config
from lightning_compress.sweep import STORAGE_ENV

__all__ = ["main"]

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-compress", description="Train and compress networks with Lightning."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train and test a model from a config, write checkpoint and summary")
    train.add_argument("config", help="YAML run config (see configs/)")
    train.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optimizer.lr=0.05")
    sweep = sub.add_parser("sweep", help="run, resume or join a multi-objective Optuna sweep")
    sweep.add_argument("sweep", help="sweep file (see sweeps/)")
    sweep.add_argument("overrides", nargs="*", help="key=value overrides of the sweep file")
    sweep.add_argument(
        "--workers", type=int, default=1, help="local worker processes (one torch thread each)"
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
    report = sub.add_parser("report", help="Pareto table, hypervolume and plots of a sweep")
    report.add_argument("sweep", help="sweep file")
    report.add_argument("overrides", nargs="*")
    report.add_argument(
        "--storage", default=None, help=f"storage URL (default: ${STORAGE_ENV} or the sweep's)"
    )
    compress = sub.add_parser(
        "compress", help="split a trained checkpoint's layers in two on calibration data (DALR, SVD)"
    )
    compress.add_argument("checkpoint", help="a checkpoint written by 'train' (final.ckpt or last.ckpt)")
    compress.add_argument("--method", default="dalr", help="dalr (on the data), dalr_bias, svd or svd_bias")
    rule = compress.add_mutually_exclusive_group(required=True)
    rule.add_argument("--params", type=float, help="budget: share (<= 1) of the layers' weights, or a count")
    rule.add_argument("--macs", type=float, help="budget: share (<= 1) of the layers' MACs, or a count")
    rule.add_argument("--rank", type=int, help="one rank for every layer")
    rule.add_argument("--energy", type=float, help="per layer: share of the output energy kept")
    rule.add_argument("--param-ratio", type=float, help="per layer: share of its weights kept")
    compress.add_argument("--out", required=True, help="the compressed checkpoint to write")
    compress.add_argument(
        "--config", default=None, help="the run config (default: the run folder's config.yaml)"
    )
    compress.add_argument("--include", nargs="+", default=None, help="layer name patterns to compress")
    compress.add_argument("--exclude", nargs="+", default=[], help="layer name patterns never compressed")
    compress.add_argument("--ridge", type=float, default=0.0, help="DALR ridge, relative to the input energy")
    compress.add_argument("--order", default="original", help="original, sequential or corrected calibration")
    compress.add_argument("--calibration", default="val", help="val (held apart from test) or train")
    compress.add_argument("--max-batches", type=int, default=None, help="calibration batches per pass")
    compress.add_argument("--finetune-epochs", type=int, default=0, help="fine-tune after compressing")
    compress.add_argument("--finetune-lr", type=float, default=None, help="learning rate of the fine-tune")
    neurons = sub.add_parser("neurons", help="report zero / near-zero neurons per layer of a checkpoint")
    neurons.add_argument("checkpoint", help="a checkpoint written by 'train' (final.ckpt or last.ckpt)")
    neurons.add_argument(
        "--relative-threshold", type=float, default=1e-3, help="near zero: norm <= this x layer max"
    )
    return parser


def _first(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _neurons(args: argparse.Namespace) -> int:
    if not args.relative_threshold >= 0:
        raise ConfigError("--relative-threshold", f"must be >= 0, got {args.relative_threshold}")
    from lightning_compress.run import load_checkpoint
    from lightning_compress.surgery.report import format_neuron_report, neuron_report

    module = load_checkpoint(args.checkpoint)
    rows = neuron_report(module, module.example_input_array, relative_threshold=args.relative_threshold)
    print(format_neuron_report(rows))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ConfigError("--workers", f"must be >= 1, got {args.workers}")
    if args.threads_per_worker is not None and args.threads_per_worker < 1:
        raise ConfigError("--threads-per-worker", f"must be >= 1, got {args.threads_per_worker}")
    if args.n_trials is not None and args.n_trials < 1:
        raise ConfigError("--n-trials", f"must be >= 1, got {args.n_trials}")
    from lightning_compress.sweep.runner import run_sweep

    summary = run_sweep(
        args.sweep,
        args.overrides,
        workers=args.workers,
        storage=args.storage or os.environ.get(STORAGE_ENV) or None,
        n_trials=args.n_trials,
        worker_offset=args.worker_offset,
        threads_per_worker=args.threads_per_worker,
    )
    if summary.get("interrupted"):
        return 130
    return 0 if summary.get("budget_met") else 1  # a killed worker is reported; its trial was retried


def _report(args: argparse.Namespace) -> int:
    from lightning_compress.sweep.runner import summarize

    summarize(args.sweep, args.overrides, storage=args.storage or os.environ.get(STORAGE_ENV) or None)
    return 0


def _compress(args: argparse.Namespace) -> int:
    from lightning_compress.run import compress_checkpoint

    rules = {k: getattr(args, k) for k in ("params", "macs", "rank", "energy", "param_ratio")}
    summary = compress_checkpoint(
        args.checkpoint,
        args.out,
        config=args.config,
        finetune_epochs=args.finetune_epochs,
        finetune_lr=args.finetune_lr,
        calibration=args.calibration,
        method=args.method,
        include=args.include,
        exclude=args.exclude,
        ridge=args.ridge,
        order=args.order,
        max_batches=args.max_batches,
        **{k: v for k, v in rules.items() if v is not None},
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "layers"}, indent=2))
    return 0


def _train(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    from lightning_compress.run import preflight, train

    summary = train(cfg, datamodule=preflight(cfg))
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input, with a one-line message).

    Example:
        >>> main(["train", "configs/no_such_config.yaml"])  # prints the error line on stderr
        2
    """
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "compress":
            return _compress(args)
        if args.command == "neurons":
            return _neurons(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "report":
            return _report(args)
    except ConfigError as err:
        print(f"lightning-compress: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyError as err:  # optuna: a study that does not exist in the storage
        print(f"lightning-compress: error: {err.args[0] if err.args else err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # a file or folder that cannot be read or written, a full disk
        text = err.strerror if err.strerror and err.filename is None and err.errno else _first(err)
        print(f"lightning-compress: error: {text}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 1


if __name__ == "__main__":
    sys.exit(main())
