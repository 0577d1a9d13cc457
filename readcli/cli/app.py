"""The Typer application. Commands live one per module in `readcli/cli/commands/`.

Each command module defines `register(app)`; the modules import only typer and readcli's light
modules at import time, and load rich, torch and friends inside the command function.

`app` is the whole application (tests drive it with typer's CliRunner). The `readcli` script runs
`entry`: the same root options and commands, but a command's click object is built (typer reads
its signature) only when that command runs or shows its help, and `readcli --help` lists the
commands from their docstrings; building all ten costs a fifth of `readcli --help`
(bench/cli_startup_bench.py).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import typer
from typer.models import CommandInfo

import readcli.cli.commands as commands
from readcli import __version__
from readcli.cli.common import OneLineUsageGroup, ReadcliCommand, summary_line, write_commands

# The order commands are listed in `readcli --help`; modules not named here follow alphabetically.
COMMAND_ORDER = ("demo", "extract", "finetune", "ground", "summarize", "evaluate", "inspect_ot")

app = typer.Typer(
    name="readcli",
    help="READ-PVLA: recurrent adapters and partial video-language alignment for low-resource "
    "video-language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: types and [required] shown; typer's rich help imports
    # rich.markdown and pygments, 0.8x `import typer` on its own (bench/cli_startup_bench.py)
    cls=OneLineUsageGroup,  # usage errors as one line, exit 2 (docs/reliability.md)
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"readcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """READ-PVLA: recurrent adapters and partial video-language alignment."""


def _command_modules() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")}
    ordered = [name for name in COMMAND_ORDER if name in found]
    return ordered + sorted(found - set(ordered))


for _name in _command_modules():
    importlib.import_module(f"readcli.cli.commands.{_name}").register(app)
for _info in app.registered_commands:
    _info.cls = _info.cls if _info.cls not in (None, typer.core.TyperCommand) else ReadcliCommand


def _command_infos() -> dict[str, CommandInfo]:
    """The app's commands by the name typer gives them, in `readcli --help` order."""
    infos = {}
    for info in app.registered_commands:
        assert info.callback is not None
        infos[info.name or info.callback.__name__.lower().replace("_", "-")] = info
    return infos


class LazyCommandGroup(OneLineUsageGroup):
    """The `readcli` script's group: commands built on first use (module docstring)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *_command_infos()]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        info = _command_infos().get(cmd_name)
        if found is None and info is not None:
            found = typer.main.get_command_from_info(
                info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=None
            )
            self.commands[cmd_name] = found
        return found

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """From the docstrings, without building the commands (the point of this class)."""
        rows = [
            (name, summary_line(info.short_help or info.help or (info.callback and info.callback.__doc__)))
            for name, info in _command_infos().items()
            if not info.hidden
        ]
        write_commands(formatter, rows)


entry = typer.Typer(
    name=app.info.name,
    help=app.info.help,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=LazyCommandGroup,
)
entry.callback()(_root)
