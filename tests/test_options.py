"""Each option is declared once: config keys, command-line flags and callback arguments pinned to one another."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from enum import Enum
from typing import Any

import pytest

from lightning_compress.callbacks import LowRankCompression
from lightning_compress.cli.parser import COMPRESS_OPTIONS, build_parser
from lightning_compress.config import METHODS, load_config
from lightning_compress.config.sections import argument_help
from lightning_compress.surgery import RANK_RULES, RankRule, compress_low_rank

CLI_ONLY = {"checkpoint", "config", "out", "finetune_epochs", "finetune_lr", "model_class", "help"}
"""Flags of ``compress`` that are not the callback's: the files and the fine-tune after it."""


def _arguments(target: Any) -> dict[str, inspect.Parameter]:
    function = target.__init__ if inspect.isclass(target) else target
    return {
        n: p for n, p in inspect.signature(function).parameters.items() if n not in ("self", "example_input")
    }


def _plain(value: Any) -> Any:
    value = value.value if isinstance(value, Enum) else value
    return list(value) if isinstance(value, tuple) else value


def _compress_actions() -> dict[str, argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["compress"]._actions}


def _pin(schema: type, callback: Any) -> None:
    """The schema's fields are the callback's arguments, in order, with the same defaults."""
    arguments = _arguments(callback)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    assert list(fields) == list(arguments)
    for name, parameter in arguments.items():
        f = fields[name]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        assert _plain(default) == _plain(parameter.default), name


@pytest.mark.parametrize("section", list(METHODS))
def test_config_keys_are_the_callback_arguments_with_their_defaults(section: str) -> None:
    method = METHODS[section]
    _pin(method.schema, method.callback)
    value = "{rank: 4}" if section == "low_rank_compression" else "{}"
    loaded = getattr(load_config(None, [f"compression.{section}={value}"]).compression, section)
    assert set(vars(loaded)) == set(_arguments(method.callback))


@pytest.mark.parametrize("section", list(METHODS))
def test_every_argument_is_documented(section: str) -> None:
    callback = METHODS[section].callback
    assert set(_arguments(callback)) <= set(argument_help(callback)), "an argument without its Args: line"


def test_compress_flags_are_the_callbacks_arguments() -> None:
    actions = _compress_actions()
    arguments = _arguments(LowRankCompression)
    flags = set(actions) - CLI_ONLY
    assert flags == set(arguments) - {"at_epoch"}
    assert flags == {*COMPRESS_OPTIONS, *RANK_RULES}
    for name in COMPRESS_OPTIONS:
        assert _plain(actions[name].default) == _plain(arguments[name].default), name
        assert actions[name].option_strings == ["--" + name.replace("_", "-")]
    help_text = argument_help(LowRankCompression)
    assert all(actions[n].help == help_text[n].replace("``", "") for n in RANK_RULES)


def test_rank_rule_is_one_type_on_every_path() -> None:
    assert tuple(f.name for f in dataclasses.fields(RankRule)) == RANK_RULES
    callback, function = _arguments(LowRankCompression), _arguments(compress_low_rank)
    for name in (*RANK_RULES, "method", "include", "exclude", "ridge", "order", "max_batches"):
        assert _plain(callback[name].default) == _plain(function[name].default), name
    assert set(RANK_RULES) <= set(callback) and set(RANK_RULES) <= set(function)


def test_a_key_added_to_the_config_alone_fails_the_pin() -> None:
    """The pin is not vacuous: a section with one key more than its callback, or a changed default, fails it."""
    method = METHODS["neuron_report"]
    widened = dataclasses.make_dataclass("Widened", [("extra", int, 0)], bases=(method.schema,))
    with pytest.raises(AssertionError):
        _pin(widened, method.callback)
    moved = dataclasses.make_dataclass("Moved", [("every_n_epochs", int, 5)], bases=(method.schema,))
    with pytest.raises(AssertionError, match="every_n_epochs"):
        _pin(moved, method.callback)


@pytest.mark.parametrize("value", [True, 1.5, -1])
def test_int_options_refuse_bools_and_floats_alike(value: Any) -> None:
    from lightning_compress._checks import ArgumentError
    from lightning_compress.callbacks import GroupSparsity, LowRank, NeuronReport, StructuredPruning

    for make in (
        lambda: GroupSparsity(every_n_steps=value),
        lambda: LowRank(speed_batch=value),
        lambda: StructuredPruning(min_width=value),
        lambda: StructuredPruning(every_n_epochs=value),
        lambda: NeuronReport(every_n_epochs=value),
        lambda: LowRankCompression(rank=4, max_batches=value),
    ):
        with pytest.raises(ArgumentError, match="must be an int >= "):
            make()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--params", "0"], "--params"),
        (["--rank", "0"], "--rank"),
        (["--rank", "4", "--max-batches", "0"], "--max-batches"),
    ],
)
def test_a_bad_compress_flag_is_one_line_before_any_work(
    flags: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from lightning_compress.cli.main import main

    assert main(["compress", "/no/such/run/final.ckpt", "--out", "/no/such/small.ckpt", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lightning-compress: error: {named}:"), err
