"""What every command shares: the consoles and the one error boundary.

Only typer, rich and readcli.errors are imported here, so `readcli --help` stays fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from readcli.errors import ReadcliError

console = Console()
err_console = Console(stderr=True, soft_wrap=True, highlight=False)

P = ParamSpec("P")
R = TypeVar("R")


def report_error(message: str) -> None:
    """Print one line on stderr: `error: <message>`, never wrapped, never styled."""
    one_line = " ".join(message.split())
    err_console.print(f"error: {one_line}", markup=False)


def error_boundary(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a ReadcliError into one line on stderr and its exit code (1), without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ReadcliError as err:
            report_error(str(err))
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            report_error("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
