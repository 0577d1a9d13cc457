"""What every command shares: the consoles, the one error boundary and the app's click classes.

Only typer and readcli.errors are imported here; rich's Console is made on first use, so
`readcli --help` stays fast (bench/cli_startup_bench.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import typer
from typer.core import TyperCommand, TyperGroup

try:  # typer 0.2x parses with its own copy of click: its exceptions are these
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover (older typer over the click package)
    from click.exceptions import NoArgsIsHelpError, UsageError  # type: ignore[assignment]

from readcli.errors import ReadcliError
from readcli.options import Option

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """A rich Console built on first use (importing rich.console costs a third of `readcli --help`)."""

    def __init__(self, **settings: Any) -> None:
        self._settings = settings
        self._console: Console | None = None

    def _made(self) -> Console:
        if self._console is None:
            # lazy: rich.console costs a third of `readcli --help` (module docstring)
            from rich.console import Console

            self._console = Console(**self._settings)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    # `with console:` (rich's Live and Progress do it) looks these up on the type, not via __getattr__
    def __enter__(self) -> Console:
        return self._made().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._made().__exit__(*exc)


console = cast("Console", _LazyConsole())
err_console = cast("Console", _LazyConsole(stderr=True, soft_wrap=True, highlight=False))

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

    def get_help_option(self, ctx: Any) -> Any:
        return _bool_default(super().get_help_option(ctx))

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """Each command with its docstring's first paragraph in full, wrapped (click cuts it at ~45
        characters with "...")."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, summary_line(command.short_help or command.help)))
        write_commands(formatter, rows)


def summary_line(text: str | None) -> str:
    """The first paragraph of a command's help, on one line."""
    return " ".join((text or "").strip().split("\n\n")[0].split())


def write_commands(formatter: Any, rows: list[tuple[str, str]]) -> None:
    if rows:
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class ReadcliCommand(TyperCommand):
    """Every command's click class (app.py sets it): arguments named in capitals in the usage line
    (`VIDEO QUERY`, not typer's `{video} {query}`), and a help flag that never loads pydantic."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.param_type_name == "argument" and param.metavar is None and param.name:
                param.metavar = param.name.upper()

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """`[OPTIONS] VIDEO QUERY`: a required argument bare, an optional one in brackets (click's style)."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                pieces += param.get_usage_pieces(ctx)
                continue
            name = str(param.metavar) + ("..." if param.nargs != 1 else "")
            pieces.append(name if param.required else f"[{name}]")
        return pieces

    def get_help_option(self, ctx: Any) -> Any:
        return _bool_default(super().get_help_option(ctx))


def _bool_default(option: Any) -> Any:
    """A help flag whose default is False rather than None: typer skips its pydantic coercer for a
    bool value, and importing pydantic doubles `readcli CMD --help` (bench/cli_startup_bench.py)."""
    if option is not None and option.default is None:
        option.default = False
    return option


def threads_option() -> Any:
    """The `--threads` option every command that does CPU work takes (docs/performance.md)."""
    return typer.Option(
        "--threads",
        help="CPU threads for torch (default: READCLI_THREADS, else OMP_NUM_THREADS, else the free cores).",
    )


def cli_option(spec: Option[Any], *short: str, help: str | None = None) -> Any:
    """The Typer option of `spec` (readcli.options): its flag (plus `short` aliases) and help text.

    Its default is the parameter's: write `= spec.default`, or None where "not given" means something
    (a task's default, or the recorded value on --resume)."""
    return typer.Option(spec.flag, *short, help=spec.help_text if help is None else help)


def use_threads(requested: int | None) -> None:
    """Apply the thread policy (readcli.threads) before the command's CPU work starts."""
    # lazy: the thread policy imports torch, which loads only once the command runs
    from readcli.pipelines.runtime import use_threads as apply_policy

    apply_policy(requested)
