"""The package's shape: every subpackage's public names import, files stay small, the README runs."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lightning_compress"
SUBPACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_star_import_of_every_subpackage(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from lightning_compress.{name} import *", namespace)
    module = importlib.import_module(f"lightning_compress.{name}")
    public = getattr(module, "__all__", None)
    assert public, f"lightning_compress.{name} has no __all__"
    assert set(public) <= set(namespace), set(public) - set(namespace)


def test_subpackages_are_found() -> None:
    assert {"callbacks", "regularizers", "surgery", "functional", "config", "sweep", "cli"} <= set(
        SUBPACKAGES
    )


def test_no_package_file_over_300_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 300
    }
    assert not long, long


def test_the_readme_stays_a_users_document() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def _readme_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under '## {heading}'"
    return match.group(1)


def test_readme_plain_pytorch_loop_runs_and_removes_neurons() -> None:
    namespace: dict[str, object] = {}
    exec(_readme_block("Without Lightning"), namespace)
    model = namespace["model"]
    first = model[1]  # type: ignore[index]
    assert first.out_features < 300, "the loop's group lasso zeroed and removed neurons of the first layer"


def test_every_public_class_and_function_has_a_doctested_example() -> None:
    import inspect

    missing = []
    for name in SUBPACKAGES:
        module = importlib.import_module(f"lightning_compress.{name}")
        for public in module.__all__:
            obj = getattr(module, public)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                doc = inspect.getdoc(obj) or ""
                if ">>>" not in doc:
                    missing.append(f"{name}.{public}")
    assert not missing, missing
