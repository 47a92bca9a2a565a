"""The third-party model zoo (torchvision, timm, Hugging Face), importable beside our CPU torch.

``scripts/install_zoo.sh`` (run by ``make test``) installs the packages into ``.zoo/``, outside the venv;
:func:`zoo` puts that folder last on ``sys.path`` and stubs torchvision's meta registrations of its C ops
(the index's torchvision wheel is a CUDA build whose ops do not load beside a CPU torch; its model
constructors, pure Python, never call them).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from types import ModuleType

ZOO = Path(__file__).resolve().parents[1] / ".zoo"


def zoo(name: str) -> ModuleType:
    """Import ``name`` (``torchvision``, ``timm``, ``transformers``) from the zoo folder.

    Raises:
        ImportError: naming ``make zoo`` when the folder is missing.
    """
    if not (ZOO / ".installed-1").is_file():
        raise ImportError(f"the model zoo is not installed in {ZOO}: run 'make zoo'")
    if str(ZOO) not in sys.path:
        sys.path.append(str(ZOO))  # last: the venv's own packages win every tie
    if "torchvision" not in sys.modules:
        stub = "torchvision._meta_registrations"
        sys.modules.setdefault(stub, types.ModuleType(stub))
    return __import__(name)


def zoo_if_named(text: str, monkeypatch: object) -> None:
    """Import timm from the zoo when ``text`` (a config or sweep file) names it; ``sys.path`` is restored
    after the test (``monkeypatch``), so workers spawned by later tests do not see the zoo's packages."""
    if "timm" in text:
        monkeypatch.setattr(sys, "path", list(sys.path))  # type: ignore[attr-defined]
        zoo("timm")
