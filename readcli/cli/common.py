"""What every command shares: the consoles and the one error boundary.

Only typer, rich and readcli.errors are imported here, so `readcli --help` stays fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

try:  # typer 0.2x parses with its own copy of click: its exceptions are these
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover (older typer over the click package)
    from click.exceptions import NoArgsIsHelpError, UsageError  # type: ignore[assignment]

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


def _one_line_usage(call: Callable[[], R]) -> R:
    try:
        return call()
    except NoArgsIsHelpError:
        raise  # `readcli` alone prints the help, as asked
    except UsageError as err:
        where = err.ctx.command_path if err.ctx is not None else "readcli"
        report_error(f"{err.format_message()} (see '{where} --help')")
        raise typer.Exit(err.exit_code) from None


class OneLineUsageGroup(TyperGroup):
    """The app's group: a usage error (unknown option, a value of the wrong type, a missing argument)
    becomes one line on stderr and exit code 2, like every other error, instead of click's boxed text.

    Use as `typer.Typer(cls=OneLineUsageGroup)`; `--help` output is unchanged.
    """

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        parent_make = super().make_context
        return _one_line_usage(lambda: parent_make(info_name, args, parent, **extra))

    def invoke(self, ctx: Any) -> Any:
        parent_invoke = super().invoke
        return _one_line_usage(lambda: parent_invoke(ctx))


def threads_option() -> Any:
    """The `--threads` option every command that does CPU work takes (docs/performance.md)."""
    return typer.Option(
        "--threads",
        help="CPU threads for torch (default: READCLI_THREADS, else OMP_NUM_THREADS, else the free cores).",
    )


def use_threads(requested: int | None) -> None:
    """Apply the thread policy (readcli.threads) before the command's CPU work starts."""
    from readcli.threads import apply_threads  # imports torch: only once the command runs

    apply_threads(requested)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
