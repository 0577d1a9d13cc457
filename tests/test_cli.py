"""The CLI's shape: help lists the commands, starts without heavy imports, and errors are one line."""

from __future__ import annotations

import subprocess
import sys

import typer
from typer.testing import CliRunner

from readcli.cli import app
from readcli.cli.common import error_boundary
from readcli.errors import InvalidValueError

runner = CliRunner()


def test_help_lists_every_command_with_one_line_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in app.registered_commands:
        name = command.name or command.callback.__name__.replace("_", "-")  # type: ignore[union-attr]
        assert name in result.output
        assert command.help or (command.callback and command.callback.__doc__), name


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; from readcli.cli import app; from typer.testing import CliRunner;"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('torch', 'transformers', 'open_clip', 'decord', 'numpy') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_error_boundary_prints_one_line_and_exits_1(capsys: object) -> None:
    demo = typer.Typer()

    @demo.command()
    @error_boundary
    def fail(value: float = 0.0) -> None:
        raise InvalidValueError(f"--tau {value} is out of range: use a value in (0, 10]")

    result = runner.invoke(demo, ["--value", "-1"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: --tau -1.0 is out of range: use a value in (0, 10]"
    assert "Traceback" not in result.output
