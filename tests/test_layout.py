"""The layout's rules, read from the source: no import circles, layers that only point down.

A circle or an upward import is how a flat house comes back; these tests name the modules
that do it. Every import counts, also those inside functions and under TYPE_CHECKING: a
circle hidden behind a lazy import is still one concept in two places.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lvscare", "bootstrap")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(*tops: str) -> dict[str, Path]:
    """Every module of these top-level folders by dotted name."""
    return {module_name(p): p for top in tops for p in sorted((ROOT / top).rglob("*.py"))}


def imported_names(path: Path, name: str) -> Iterator[str]:
    """Dotted names `path` imports, relative imports made absolute."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(*tops: str) -> dict[str, set[str]]:
    """Module -> the modules of these folders it imports (a name that is no module is skipped)."""
    known = modules(*tops)
    return {
        name: {n for n in imported_names(path, name) if n in known and n != name}
        for name, path in known.items()
    }


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_circles_are_found_by_this_check() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("top", PACKAGES)
def test_no_import_circles(top: str) -> None:
    assert circles(import_graph(top)) == []


def test_the_host_layer_never_imports_the_cluster_layer_or_the_cli() -> None:
    graph = import_graph("bootstrap")
    host = [m for m in graph if m.startswith("bootstrap.host")]
    assert host, "bootstrap.host is where one host's steps live"
    upward = {
        m: sorted(i for i in graph[m] if i.startswith(("bootstrap.cluster", "bootstrap.cli")))
        for m in host
    }
    assert {m: i for m, i in upward.items() if i} == {}


def test_lvscare_never_imports_bootstrap() -> None:
    graph = import_graph("lvscare", "bootstrap")
    lvscare = {m: graph[m] for m in graph if m.startswith("lvscare")}
    assert {
        m: sorted(i) for m, i in lvscare.items() if any(n.startswith("bootstrap") for n in i)
    } == {}


def test_benchmarks_take_from_the_tests_only_their_support_package() -> None:
    uses = {
        name: sorted(n for n in imported_names(path, name) if n.startswith("tests"))
        for name, path in modules("bench").items()
    }
    outside = {
        m: [n for n in names if not n.startswith("tests.support")] for m, names in uses.items()
    }
    assert {m: n for m, n in outside.items() if n} == {}


SYS_PATH_EDIT = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*(\+)?=")


def test_nothing_edits_sys_path() -> None:
    """Tests and benchmarks are packages run from the checkout's root."""
    offenders = [
        str(p.relative_to(ROOT))
        for top in ("tests", "bench", "scripts", *PACKAGES)
        for p in sorted((ROOT / top).rglob("*.py"))
        if p != Path(__file__).resolve() and SYS_PATH_EDIT.search(p.read_text())
    ]
    assert offenders == []
