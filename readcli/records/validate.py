"""pydantic models as readcli's record schemas, and their errors as one line.

A schema is a `Record` subclass: strict about unknown keys (a typo is an error, as everywhere in
readcli's configuration) and frozen. The model itself is lax so that a JSON array can fill a tuple,
but the field types below are strict: a JSON number may fill a float field, a string or a bool may
not fill a number, and a number may not fill a string. Schemas use these types (and `Count`) for
every scalar.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError

from readcli.errors import InputFileError

M = TypeVar("M", bound="Record")


class Record(BaseModel):
    """Base of every record schema: unknown keys refused, immutable, no coercion from strings."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _plain_name(value: str) -> str:
    # ids become file names (features/{vid}.npz): no separators, no "." or "..", nothing hidden
    if not value or value in (".", "..") or "/" in value or "\\" in value or "\x00" in value:
        raise ValueError("must be a plain file name (no '/', '\\', '.' or '..')")
    return value


# A JSON number (int or float, never bool) that is finite; ints widen to float in strict mode.
Finite = Annotated[float, Strict(), AfterValidator(_finite)]
NonNegative = Annotated[float, Strict(), Field(ge=0), AfterValidator(_finite)]
Positive = Annotated[float, Strict(), Field(gt=0), AfterValidator(_finite)]
Count = Annotated[int, Strict(), Field(ge=0)]
Text = Annotated[str, Strict()]
PlainName = Annotated[str, Strict(), AfterValidator(_plain_name)]


def _field_path(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "record"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(schema: type[M], data: Any, where: str) -> M:
    """`data` as a `schema` instance, or an InputFileError: `where: field f: value v: what is valid`.

    Only the first error is reported: one line, and the fix for it usually fixes the rest.
    """
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        field = _field_path(tuple(first["loc"]))
        reason = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            valid = ", ".join(sorted(schema.model_fields))
            raise InputFileError(f"{where}: unknown field {field!r}: valid fields are {valid}") from None
        if first["type"] == "missing":
            raise InputFileError(f"{where}: missing field {field!r}") from None
        raise InputFileError(f"{where}: field {field!r} = {_shown(first.get('input'))}: {reason}") from None
