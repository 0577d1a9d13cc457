"""The Typer application. Commands live one per module in `readcli/cli/commands/`.

Each command module defines `register(app)`; the modules import only typer, rich and readcli's light
modules at import time, and load torch and friends inside the command function.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from readcli import __version__
from readcli.cli import commands
from readcli.cli.common import OneLineUsageGroup, ReadcliCommand

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
