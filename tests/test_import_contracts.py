"""The lint contract against import circles finds circles (it is not vacuous) and finds none in the package."""

from __future__ import annotations

import grimp

from tools.import_contracts import _cycles


def test_a_circle_through_three_modules_is_found() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(edges) == [["a", "b", "c"]]


def test_a_package_importing_its_importer_is_a_circle() -> None:
    edges = {"pkg": {"pkg.runner"}, "pkg.runner": {"pkg.worker"}, "pkg.worker": {"pkg"}}
    assert _cycles(edges) == [["pkg", "pkg.runner", "pkg.worker"]]


def test_a_chain_is_no_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_package_has_no_import_circle() -> None:
    graph = grimp.build_graph("lightning_compress", exclude_type_checking_imports=True)
    modules = set(graph.modules)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}
    assert _cycles(edges) == []
