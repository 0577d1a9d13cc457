"""User-facing documents point only at what a user has: no development-machine paths.

The project's test fixtures live beside the repository (`../shared`) on the development machine and
are not shipped, so a README or docs page that points there sends a user to a folder they lack.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("../shared", "/work/")  # the fixture folder and the development machine's root


def user_facing_documents() -> list[Path]:
    """README.md, every Markdown file under docs/, and any that ship inside the package."""
    found = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
    return found + sorted((REPO_ROOT / "readcli").rglob("*.md"))


def forbidden_lines(text: str) -> list[str]:
    """`line N: ...` for every line holding a forbidden path."""
    return [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), start=1)
        if any(path in line for path in FORBIDDEN)
    ]


def test_the_documents_exist() -> None:
    documents = user_facing_documents()
    assert (REPO_ROOT / "README.md").is_file()
    assert len(documents) > 10  # README plus the docs pages: a moved folder must not pass silently


@pytest.mark.parametrize("document", user_facing_documents(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_document_points_at_the_development_machine(document: Path) -> None:
    hits = forbidden_lines(document.read_text(encoding="utf-8"))
    assert not hits, f"{document.relative_to(REPO_ROOT)} points at paths users do not have: {hits}"


def test_the_check_catches_both_paths() -> None:
    text = "see ../shared/data/x.pt\nfine line\nor /work/shared/docs/paper.md\n"
    expected = ["line 1: see ../shared/data/x.pt", "line 3: or /work/shared/docs/paper.md"]
    assert forbidden_lines(text) == expected
    assert forbidden_lines("--out /shared/runs/read (a cluster's own folder)") == []
