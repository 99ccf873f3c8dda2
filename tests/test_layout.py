"""The house rules a newcomer relies on, checked on the source: no import cycle among the
product's modules (lazy imports inside functions included, ``if TYPE_CHECKING:`` ones left out,
since they never run), and no function body over 50 lines (docs/development.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.paths import REPO

PACKAGES = ("trainer", "submit", "benchmarks", "serve")
MAX_BODY_LINES = 50


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, tuple[Path, ast.Module]]:
    paths = sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))
    return {_module(p): (p, ast.parse(p.read_text(encoding="utf-8"))) for p in paths}


def _imports(module: str, path: Path, tree: ast.Module, known: set[str]) -> set[str]:
    """The product modules ``module`` imports; ``from package import name`` counts as the
    submodule ``package.name`` when there is one, else as ``package``."""
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        found |= {t for t in targets if t in known}
    return found - {module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycle_among_the_products_modules() -> None:
    sources = _sources()
    known = set(sources)
    graph = {m: _imports(m, p, tree, known) for m, (p, tree) in sources.items()}
    assert len(graph) > 90  # every package was read
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_lazy_cycle() -> None:
    """A lazy import inside a function closes a cycle too (errors <-> network was one)."""
    known = {"a", "b"}
    graph = {
        "a": _imports("a", REPO / "a.py", ast.parse("import b\n"), known),
        "b": _imports("b", REPO / "b.py", ast.parse("def f():\n    from a import x\n"), known),
    }
    assert graph == {"a": {"b"}, "b": {"a"}}
    assert _cycles(graph) == [["a", "b"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_function_body_over_50_lines(package: str) -> None:
    long = []
    for module, (_, tree) in _sources().items():
        if module.split(".")[0] != package:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            has_doc = isinstance(body[0], ast.Expr) and isinstance(
                getattr(body[0], "value", None), ast.Constant
            )
            first = body[1] if has_doc and len(body) > 1 else body[0]
            lines = (node.end_lineno or first.lineno) - first.lineno + 1
            if lines > MAX_BODY_LINES:
                long.append(f"{module}.{node.name}: {lines} lines")
    assert long == []
