"""Each user-facing option defined once: flag, default, range check and help text (docs/cli.md).

The CLI declares its Typer options from these specs (`readcli.cli.common.cli_option`), and the
pipelines' requests and the core's settings validate with them, so a default, a range or the words
of its error are written in one place. One module per domain: `alignment` (PVLA and the OT solver),
`training` (the optimisation loop), `finetune` (tasks, backbones, methods), `features`. Nothing here
imports torch, typer or pydantic: `readcli --help` reads these modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from readcli.errors import InvalidValueError

T = TypeVar("T")
Check = Callable[[Any], bool]


@dataclass(frozen=True)
class Option(Generic[T]):
    """One option: `--flag`, its default, what is valid (`check`, said as `valid`), and its help.

    The CLI shows the default itself (`[default: ...]`) unless it is None; `help` may name
    `{default}`. `problem` is the verb of the error ("is invalid", "is out of range").
    """

    flag: str
    default: T
    help: str
    check: Check | None = None
    valid: str = ""
    problem: str = "is invalid"

    @property
    def field(self) -> str:
        """The request field this option fills: `--pvla-weight` -> `pvla_weight`."""
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def help_text(self) -> str:
        return self.help.format(default=self.default)

    def validate(self, value: T, name: str | None = None) -> T:
        """`value` if it passes `check`, else InvalidValueError naming it as `name` (default: the flag)."""
        if self.check is not None and not self.check(value):
            shown = repr(value) if isinstance(value, str) else value
            raise InvalidValueError(f"{name or self.flag} {shown} {self.problem}: {self.valid}")
        return value


def is_number(value: object) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def number_in(low: float, high: float, *, low_open: bool = False) -> Check:
    """A finite number in [low, high] ((low, high] with `low_open`)."""
    return lambda v: is_number(v) and (low < v if low_open else low <= v) and v <= high


def at_least(low: float) -> Check:
    return lambda v: is_number(v) and v >= low


def integer_at_least(low: int) -> Check:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def one_of(choices: Sequence[str]) -> Check:
    return lambda v: v in choices
