"""The ``lightning-compress`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from lightning_compress._logging import hide_lightning_tips
from lightning_compress.cli.parser import build_parser
from lightning_compress.sweep import STORAGE_ENV

__all__ = ["main"]

EXIT_BAD_INPUT = 2


def _first(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _neurons(args: argparse.Namespace) -> int:
    from lightning_compress.config import ConfigError

    if not args.relative_threshold >= 0:
        raise ConfigError("--relative-threshold", f"must be >= 0, got {args.relative_threshold}")
    from lightning_compress.run import load_checkpoint, load_user_checkpoint
    from lightning_compress.surgery import INPUTS_ATTRIBUTE, example_from_spec
    from lightning_compress.surgery.measure.report import format_neuron_report, neuron_report

    if args.model_class:
        module = load_user_checkpoint(args.checkpoint, args.model_class)
    else:
        module = load_checkpoint(args.checkpoint)
    x = module.example_input_array
    if x is None and INPUTS_ATTRIBUTE in module._buffers:
        x = example_from_spec(module._buffers[INPUTS_ATTRIBUTE])
    if x is None:
        raise ConfigError("checkpoint", "the module has no example input (set example_input_array)")
    rows = neuron_report(module, x, relative_threshold=args.relative_threshold)
    print(format_neuron_report(rows))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from lightning_compress.config import ConfigError

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
    from lightning_compress.cli.parser import COMPRESS_OPTIONS
    from lightning_compress.run import compress_checkpoint
    from lightning_compress.surgery import RANK_RULES

    options = {k: getattr(args, k) for k in (*COMPRESS_OPTIONS, *RANK_RULES)}
    summary = compress_checkpoint(
        args.checkpoint,
        args.out,
        config=args.config,
        finetune_epochs=args.finetune_epochs,
        finetune_lr=args.finetune_lr,
        model_class=args.model_class,
        **options,
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "layers"}, indent=2))
    return 0


def _export(args: argparse.Namespace) -> int:
    from lightning_compress.run import export_checkpoint

    info = export_checkpoint(
        args.checkpoint,
        args.out,
        model_class=args.model_class,
        config=args.config,
        normalization=not args.no_normalization,
        dynamic_batch=not args.static_batch,
    )
    print(json.dumps(info, indent=2))
    return 0


def _sizes(args: argparse.Namespace) -> int:
    from lightning_compress.run.sizes import format_sizes, take_sizes

    by = next(m for m in ("params", "macs", "ratio") if getattr(args, m) is not None)
    rows = take_sizes(
        args.checkpoint,
        getattr(args, by),
        by=by,
        out=args.out,
        config=args.config,
        bn_batches=args.bn_batches,
        min_rank=args.min_rank,
        progress=sys.stderr.isatty(),
    )
    print(format_sizes(rows))
    if args.out:
        print(f"models, sizes.json and sizes.png in {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from lightning_compress.config import load_config

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
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(derived=command == "compress").parse_args(
        argv
    )  # --help and --version answer before the heavy imports
    hide_lightning_tips()
    from lightning_compress.config import ConfigError

    try:
        if args.command == "train":
            return _train(args)
        if args.command == "compress":
            return _compress(args)
        if args.command == "export":
            return _export(args)
        if args.command == "neurons":
            return _neurons(args)
        if args.command == "sizes":
            return _sizes(args)
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
        if err.filename is not None and err.strerror:
            text = f"{err.filename}: {err.strerror}"
        else:
            text = err.strerror if err.strerror and err.errno else _first(err)
        print(f"lightning-compress: error: {text}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 1


if __name__ == "__main__":
    sys.exit(main())
