"""The ``lightning-compress`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from lightning_compress.config.load import ConfigError, load_config

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
    neurons = sub.add_parser("neurons", help="report zero / near-zero neurons per layer of a checkpoint")
    neurons.add_argument("checkpoint", help="a checkpoint written by 'train' (final.ckpt or last.ckpt)")
    neurons.add_argument(
        "--relative-threshold", type=float, default=1e-3, help="near zero: norm <= this x layer max"
    )
    return parser


def _neurons(args: argparse.Namespace) -> int:
    import os

    if not os.path.isfile(args.checkpoint):
        raise ConfigError("checkpoint", f"file not found: {args.checkpoint!r}")
    if not args.relative_threshold >= 0:
        raise ConfigError("--relative-threshold", f"must be >= 0, got {args.relative_threshold}")
    from lightning_compress.models import Classifier
    from lightning_compress.surgery.report import format_neuron_report, neuron_report

    module = Classifier.load_from_checkpoint(args.checkpoint, map_location="cpu")
    rows = neuron_report(module, module.example_input_array, relative_threshold=args.relative_threshold)
    print(format_neuron_report(rows))
    return 0


def _train(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    from lightning_compress.cli.train import train

    summary = train(cfg)
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input, with a one-line message)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "neurons":
            return _neurons(args)
    except ConfigError as err:
        print(f"lightning-compress: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as err:
        print(f"lightning-compress: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 1


if __name__ == "__main__":
    sys.exit(main())
