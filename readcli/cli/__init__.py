"""Command-line interface (Typer + rich). The only layer that prints."""

from __future__ import annotations

from readcli.cli.app import app, entry

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the `readcli` script and `python -m readcli` (commands built on first use)."""
    entry()
