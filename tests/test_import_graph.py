"""readcli's import graph, read from the source (the AST of every module; nothing is imported).

Three rules of issue 16 (README.md, Layout): no import cycle between readcli's modules, counting the
imports inside functions (a cycle hidden behind a function-level import is still a cycle); no
function-level import unless it is a deliberate lazy load, marked by a `# lazy: <reason>` comment on the
line above it (or above the first of a run of consecutive import lines); and backbones import nothing
from adapters (the backbone contract lives on the backbone side).

Imports under `if TYPE_CHECKING:` are not run, so they make no edge of the cycle graph; they still count
for the backbones/adapters rule, since a type is a dependency too. `importlib.import_module` calls (the
packages' lazy exports, readcli/lazy.py) are not statements and are not seen here. Nor are the parent
packages Python runs before a submodule: readcli's package __init__ files export their names lazily.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "readcli"
LAZY_MARKER = "# lazy:"


@dataclass(frozen=True)
class Import:
    """One import statement of a readcli module, resolved to the readcli modules it loads."""

    module: str  # the importing module, e.g. readcli.pipelines.finetune
    line: int
    targets: tuple[str, ...]  # readcli modules it names (empty for a third-party import)
    in_function: bool
    type_checking: bool
    marked_lazy: bool


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    """Every readcli module by dotted name (a package by its __init__.py)."""
    return {_module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(
    node: ast.AST, in_function: bool = False, type_checking: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    """Every import statement under `node`, with whether it sits in a function / under TYPE_CHECKING."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function, type_checking
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, True, type_checking)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.body:  # the else branch runs: walk it as ordinary code
                yield from _walk(ast.Module(body=[statement], type_ignores=[]), in_function, True)
            for statement in child.orelse:
                yield from _walk(ast.Module(body=[statement], type_ignores=[]), in_function, type_checking)
        else:
            yield from _walk(child, in_function, type_checking)


def _base_package(module: str, level: int) -> str:
    """The package a relative import of `level` dots in `module` starts from."""
    is_package = _modules()[module].name == "__init__.py"
    parts = module.split(".") if is_package else module.split(".")[:-1]
    return ".".join(parts[: len(parts) - (level - 1)])


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> tuple[str, ...]:
    """The readcli modules an import statement loads by name (not the parent packages it also runs)."""
    known = _modules()
    if isinstance(node, ast.Import):
        return tuple(alias.name for alias in node.names if alias.name in known)
    source = node.module or ""
    if node.level:
        base = _base_package(module, node.level)
        source = f"{base}.{source}" if source else base
    found: list[str] = []
    for alias in node.names:
        submodule = f"{source}.{alias.name}"
        if submodule in known:  # `from pkg import name` where pkg.name is a module
            found.append(submodule)
        elif source in known and source not in found:
            found.append(source)
    return tuple(found)


def _lazy_marked(lines: list[str], start_of: dict[int, int], line: int) -> bool:
    """Whether the comment above `line` (or above the run of import lines it ends) is `# lazy: <reason>`."""
    above = line - 1
    while above in start_of:  # climb over the consecutive import statements above this one
        above = start_of[above] - 1
    if above < 1:
        return False
    text = lines[above - 1].strip()
    return text.startswith(LAZY_MARKER) and bool(text[len(LAZY_MARKER) :].strip())


def _read(module: str, source: str) -> list[Import]:
    """The import statements of one module's source."""
    lines = source.splitlines()
    statements = list(_walk(ast.parse(source)))
    # the last line of every import statement -> its first line, to climb runs of imports
    start_of = {node.end_lineno or node.lineno: node.lineno for node, _, _ in statements}
    return [
        Import(
            module=module,
            line=node.lineno,
            targets=_targets(module, node),
            in_function=in_function,
            type_checking=type_checking,
            marked_lazy=_lazy_marked(lines, start_of, node.lineno),
        )
        for node, in_function, type_checking in statements
    ]


@cache
def _imports() -> tuple[Import, ...]:
    found: list[Import] = []
    for module, path in _modules().items():
        found.extend(_read(module, path.read_text(encoding="utf-8")))
    return tuple(found)


def _graph() -> dict[str, set[str]]:
    """module -> the readcli modules it imports when its code runs (module- and function-level)."""
    graph: dict[str, set[str]] = {module: set() for module in _modules()}
    for statement in _imports():
        if not statement.type_checking:
            graph[statement.module].update(t for t in statement.targets if t != statement.module)
    return graph


def _tangles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module: each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan; the graph has ~200 nodes, recursion depth is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, staying in the component."""
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in a strongly connected component")


def _where(statement: Import) -> str:
    path = _modules()[statement.module].relative_to(PACKAGE_DIR.parent)
    return f"{path}:{statement.line}"


def test_the_walk_sees_readcli_and_resolves_its_imports() -> None:
    # the walk itself can fail silently (a wrong root, a resolver that drops relative imports): pin it
    modules = _modules()
    assert "readcli.cli.app" in modules and "readcli.errors" in modules and len(modules) > 100
    graph = _graph()
    assert "readcli.errors" in graph["readcli.fileio"]  # a module-level absolute import
    assert sum(len(targets) for targets in graph.values()) > len(modules)


SAMPLE = """
from __future__ import annotations
from typing import TYPE_CHECKING
from . import _grounding_run
from readcli.data import annotation_jsonl, not_a_module
if TYPE_CHECKING:
    from readcli.adapters import inject
else:
    import readcli.errors


def run() -> None:
    import json
    # lazy: a reason
    import torch
    from ..training import loop

    # lazy:
    import numpy
    import readcli.fileio  # lazy: on the line itself does not count
"""


def test_the_reader_resolves_relative_imports_type_checking_and_lazy_markers() -> None:
    found = _read("readcli.pipelines.finetune", SAMPLE)
    by_line = {s.line: s for s in found}
    assert by_line[4].targets == ("readcli.pipelines._grounding_run",)
    assert by_line[5].targets == ("readcli.data.annotation_jsonl", "readcli.data")  # a module, then a name
    assert by_line[7].type_checking and not by_line[9].type_checking
    assert by_line[9].targets == ("readcli.errors",)
    assert [(s.line, s.in_function, s.marked_lazy) for s in found if s.line > 12] == [
        (13, True, False),  # no comment above
        (15, True, True),
        (16, True, True),  # in a run whose first line is marked
        (19, True, False),  # a marker without a reason
        (20, True, False),  # a marker on the import's own line
    ]
    assert by_line[16].targets == ("readcli.training.loop",)  # two dots: up from readcli.pipelines


def test_tangles_find_every_module_of_a_cycle_and_a_path_through_it() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    (tangle,) = _tangles(graph)
    assert tangle == {"a", "b", "c"}
    assert _cycle_in(graph, tangle) == ["a", "b", "c", "a"]
    assert _tangles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_readcli_modules() -> None:
    graph = _graph()
    tangles = _tangles(graph)
    assert not tangles, "import cycles (function-level imports included):\n" + "\n".join(
        " -> ".join(_cycle_in(graph, tangle)) + f"  (tangled: {', '.join(sorted(tangle))})"
        for tangle in tangles
    )


def test_every_function_level_import_is_a_marked_lazy_load() -> None:
    unmarked = [_where(s) for s in _imports() if s.in_function and not s.marked_lazy]
    assert not unmarked, (
        f"{len(unmarked)} function-level imports without a `{LAZY_MARKER} <reason>` comment above them "
        "(move them to the top of the module, or mark a deliberate lazy load):\n" + "\n".join(unmarked)
    )


def test_backbones_import_nothing_from_adapters() -> None:
    crossing = [
        f"{_where(s)} imports {', '.join(t for t in s.targets if t.startswith('readcli.adapters'))}"
        for s in _imports()
        if s.module.startswith("readcli.backbones")
        and any(t == "readcli.adapters" or t.startswith("readcli.adapters.") for t in s.targets)
    ]
    assert not crossing, "backbones must not import adapters:\n" + "\n".join(crossing)
