"""An import-linter contract: no import circle between any two modules of a package.

``acyclic_siblings`` (import-linter's own) sees circles between siblings; this one also sees a circle
that runs through a package's ``__init__`` (a module importing the package that imports it) and
function-local imports (grimp reads those too): any strongly connected set of two or more modules.
"""

from __future__ import annotations

from typing import Any

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of two or more nodes (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Any]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


class AcyclicModulesContract(Contract):
    """No module of ``package`` reaches itself through imports of the package's modules."""

    type_name = "acyclic_modules"

    package = fields.StringField()

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        root = str(self.package)
        modules = {m for m in graph.modules if m == root or m.startswith(root + ".")}
        edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if i in modules} for m in modules}
        cycles = _cycles(edges)
        links = {tuple(c): [(a, b) for a in c for b in sorted(edges[a]) if b in c] for c in cycles}
        return ContractCheck(kept=not cycles, metadata={"cycles": links})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for component, links in check.metadata["cycles"].items():
            output.print_error(f"Import circle among {len(component)} modules:", bold=True)
            for importer, imported in links:
                output.indent_cursor()
                output.print_error(f"{importer} -> {imported}")
            output.new_line()
