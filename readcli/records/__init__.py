"""Records readcli reads (JSON and JSONL): bounded parsing and one declarative schema per kind.

`parse` turns text into Python values with a bounded nesting depth and no NaN/Infinity constants;
`validate` checks them against a pydantic model and turns its errors into readcli's one-line
messages (file, line, field, value, what is valid). docs/reliability.md says why pydantic v2.
"""

from readcli.records.parse import MAX_DEPTH, parse_json, read_json_file, read_jsonl_values
from readcli.records.validate import Record, validate

__all__ = ["MAX_DEPTH", "Record", "parse_json", "read_json_file", "read_jsonl_values", "validate"]
