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

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, Strict, ValidationError

from readcli.errors import InputFileError

M = TypeVar("M", bound="Record")


class Record(BaseModel):
    """Base of every record schema: unknown keys refused, immutable, no coercion from strings."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


# File systems take names of up to 255 bytes; ids get a prefix and a suffix (qid{qid}.npz, .json).
MAX_NAME_BYTES = 200


def _plain_name(value: str) -> str:
    # ids become file names (features/{vid}.npz): no separators, no "." or "..", nothing hidden
    if not value or value in (".", "..") or "/" in value or "\\" in value or "\x00" in value:
        raise ValueError("must be a plain file name (no '/', '\\', '.' or '..')")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate ("\\ud800" in JSON) names no file that can be written
        raise ValueError("must be a plain file name in valid Unicode (no lone surrogates)") from None
    if size > MAX_NAME_BYTES:
        raise ValueError(f"must be a plain file name of at most {MAX_NAME_BYTES} bytes")
    return value


def _identifier(value: object) -> int | str:
    # qids and vids: JSON integers or plain names; 1.5, true, null, lists and "../x" are not ids
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be an integer or a plain file name")
    return _plain_name(value) if isinstance(value, str) else value


# The longest video readcli accepts: one day. Videos readcli handles last seconds to an hour (the
# longest YouTube Highlights video is 25 min); a bound keeps a typo like 1e300 from sizing an array.
MAX_SECONDS = 86_400.0
# The most clips (or rows) a record may list: a day of 0.5-s clips.
MAX_CLIPS = 172_800

# A JSON number (int or float, never bool) that is finite; ints widen to float in strict mode.
Finite = Annotated[float, Strict(), AfterValidator(_finite)]
NonNegative = Annotated[float, Strict(), Field(ge=0), AfterValidator(_finite)]
Positive = Annotated[float, Strict(), Field(gt=0), AfterValidator(_finite)]
Count = Annotated[int, Strict(), Field(ge=0)]
Text = Annotated[str, Strict()]
PlainName = Annotated[str, Strict(), AfterValidator(_plain_name)]
# An id that names a file: an integer (QVHighlights qids) or a plain file name, never 1.5 or a bool.
Id = Annotated[int | str, PlainValidator(_identifier)]
Flag = Annotated[bool, Strict()]  # true or false, never "yes" or 1
# A time in seconds inside a video, and a video's duration: finite, bounded by MAX_SECONDS.
Seconds = Annotated[float, Strict(), Field(ge=0, le=MAX_SECONDS), AfterValidator(_finite)]
Duration = Annotated[float, Strict(), Field(gt=0, le=MAX_SECONDS), AfterValidator(_finite)]
ClipIndex = Annotated[int, Strict(), Field(ge=0, lt=MAX_CLIPS)]


def _is_branch(part: int | str) -> bool:
    # pydantic names union branches and validators in the location ("constrained-float",
    # "list[...]", "function-plain[...]"); field names never hold '-' or '['
    return isinstance(part, str) and ("-" in part or "[" in part)


def _field_path(location: tuple[int | str, ...], data: Any = None) -> str:
    """`history[0].MR-full-mAP` from pydantic's location, walking the input alongside it: a part that
    indexes the input is a field (whatever characters it holds); one that does not is a union
    branch's name, unless it looks like a plain field name (a missing field)."""
    text, node = "", data
    for part in location:
        indexes_dict = isinstance(node, dict) and part in node
        indexes_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if indexes_dict or indexes_list:
            node = node[part]
        elif _is_branch(part):
            continue
        else:
            node = None
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
        errors = err.errors(include_url=False)
        # the first field in error; for a union, the branch that got deepest says most
        top = errors[0]["loc"][:1]
        first = max((e for e in errors if e["loc"][:1] == top), key=lambda e: len(e["loc"]))
        field = _field_path(tuple(first["loc"]), data)
        reason = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            valid = ", ".join(sorted(schema.model_fields))
            raise InputFileError(f"{where}: unknown field {field!r}: valid fields are {valid}") from None
        location = tuple(first["loc"])
        if first["type"] == "missing" and location and isinstance(location[-1], int):  # a short tuple
            raise InputFileError(
                f"{where}: field {_field_path(location[:-1], data)!r} = {_shown(first.get('input'))}: "
                f"too few items (no item {location[-1]})"
            ) from None
        if first["type"] == "missing":
            raise InputFileError(f"{where}: missing field {field!r}") from None
        if not first["loc"]:  # a check across fields (model_validator): its message says it all
            raise InputFileError(f"{where}: {reason}") from None
        raise InputFileError(f"{where}: field {field!r} = {_shown(first.get('input'))}: {reason}") from None
