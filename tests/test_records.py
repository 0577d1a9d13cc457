"""Bounded JSON parsing and schema errors as one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from readcli.errors import InputFileError
from readcli.records import MAX_DEPTH, Record, parse_json, read_json_file, read_jsonl_values, validate
from readcli.records.validate import Finite, NonNegative, PlainName


class _Moment(Record):
    vid: PlainName
    duration: NonNegative
    score: Finite = 0.0
    windows: list[tuple[Finite, Finite]] = []


def test_deep_nesting_is_refused_without_recursion() -> None:
    with pytest.raises(InputFileError, match=f"deeper than {MAX_DEPTH}"):
        parse_json("[" * 200_000 + "]" * 200_000, "f.json")


def test_brackets_inside_strings_do_not_count() -> None:
    assert parse_json('{"a": "' + "[" * 500 + '"}', "f.json") == {"a": "[" * 500}


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', "[-Infinity]"])
def test_non_standard_constants_are_refused(text: str) -> None:
    with pytest.raises(InputFileError, match="non-standard constant"):
        parse_json(text, "f.json")


def test_files_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="file not found"):
        read_json_file(tmp_path / "none.json")
    with pytest.raises(InputFileError, match="not a regular file"):
        read_json_file(tmp_path)
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputFileError, match="not UTF-8"):
        read_json_file(binary)
    lines = tmp_path / "r.jsonl"
    lines.write_text('{"a": 1}\n\n{"a": \n')
    with pytest.raises(InputFileError, match=r"r\.jsonl:3: not valid JSON"):
        read_jsonl_values(lines)


def test_validate_accepts_ints_for_floats_and_refuses_strings_and_bools() -> None:
    ok = validate(_Moment, {"vid": "a1", "duration": 10, "windows": [[0, 2.5]]}, "g:1")
    assert ok.duration == 10.0 and ok.windows == [(0.0, 2.5)]
    with pytest.raises(InputFileError, match=r"g:1: field 'duration' = 'x'"):
        validate(_Moment, {"vid": "a", "duration": "x"}, "g:1")
    with pytest.raises(InputFileError, match=r"field 'duration' = True"):
        validate(_Moment, {"vid": "a", "duration": True}, "g:1")


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"vid": "../etc", "duration": 1}, r"field 'vid' = '../etc': must be a plain file name"),
        ({"vid": "a", "duration": -10}, r"field 'duration' = -10: .*greater than or equal to 0"),
        ({"vid": "a", "duration": 1e400}, r"field 'duration' = inf: must be a finite number"),
        ({"vid": "a", "duration": 1, "windows": [[0, "b"]]}, r"field 'windows\[0\]\[1\]' = 'b'"),
        ({"vid": "a", "duration": 1, "extra": 1}, r"unknown field 'extra': valid fields are duration, score"),
        ({"duration": 1}, r"missing field 'vid'"),
    ],
)
def test_validate_errors_are_one_line_naming_field_and_value(data: dict, pattern: str) -> None:
    with pytest.raises(InputFileError, match=pattern) as caught:
        validate(_Moment, data, "g:1")
    assert "\n" not in str(caught.value)


def test_field_names_with_hyphens_are_kept_in_the_path() -> None:
    """Metric names hold '-' (MR-full-mAP); only pydantic's union branch names are dropped."""

    class _History(Record):
        history: list[dict[str, Finite | None]]

    with pytest.raises(InputFileError, match=r"field 'history\[0\]\.MR-full-mAP' = 'x'"):
        validate(_History, {"history": [{"MR-full-mAP": "x"}]}, "state.json")
