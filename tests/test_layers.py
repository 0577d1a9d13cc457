"""Imports go one way: cli -> pipelines -> core. typer and rich live in the CLI layer only."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "readcli"
CORE = {"adapters", "alignment", "backbones", "data", "features", "evaluation", "inference", "training"}


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    if parts[0] in ("cli", "cli.py", "__main__.py"):
        return "cli"
    if parts[0] == "pipelines":
        return "pipelines"
    if parts[0] in CORE:
        return "core"
    return "root"  # errors.py, fileio.py, __init__.py: usable from every layer


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_imports_go_one_way() -> None:
    forbidden = {
        "core": ("readcli.cli", "readcli.pipelines", "typer", "rich"),
        "pipelines": ("readcli.cli", "typer", "rich"),
        "root": ("readcli.cli", "readcli.pipelines", "typer", "rich"),
        "cli": (),
    }
    violations = []
    for path in PACKAGE.rglob("*.py"):
        layer = _layer(path)
        for name in _imported_modules(path):
            for bad in forbidden[layer]:
                if name == bad or name.startswith(bad + "."):
                    violations.append(f"{path.relative_to(PACKAGE.parent)} ({layer}) imports {name}")
    assert not violations, "\n".join(violations)


def test_cli_modules_import_no_heavy_library_at_top_level() -> None:
    heavy = ("torch", "transformers", "open_clip", "decord", "numpy", "scipy", "peft", "matplotlib")
    violations = []
    for path in (PACKAGE / "cli").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # readcli.options holds the option specs; it imports no torch (test_cli_startup proves it)
        for node in tree.body:  # top-level statements only: imports inside commands are fine
            mods: list[str] = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods = [node.module]
            for mod in mods:
                if (
                    mod.split(".")[0] in heavy
                    or mod.startswith("readcli.")
                    and not mod.startswith(("readcli.cli", "readcli.errors", "readcli.options"))
                ):
                    violations.append(f"{path.relative_to(PACKAGE.parent)}: top-level import of {mod}")
    assert not violations, "\n".join(violations)
