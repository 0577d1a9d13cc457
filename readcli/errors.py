"""Typed errors. Library code raises these; the CLI's one error boundary turns them into one line.

Every message names the bad value and what would be valid, so a user can fix the input without
reading a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields


class ReadcliError(Exception):
    """Base class: a problem with the user's input or environment, reported as one line, exit 1."""

    exit_code: int = 1


class InvalidValueError(ReadcliError, ValueError):
    """An option or argument outside its valid range or set of choices."""


class InputFileError(ReadcliError):
    """A file that is missing, unreadable, malformed, or has the wrong content."""


class OutputFileError(ReadcliError, OSError):
    """A file readcli could not write (a full disk, a read-only folder); the previous file is kept.

    Also an OSError, so callers that already handle failed writes keep doing so."""


class BundleError(ReadcliError):
    """An adapter bundle that does not fit the backbone, or is corrupt."""


class CheckpointError(ReadcliError):
    """A backbone checkpoint that cannot be loaded safely or does not match its architecture."""


class OfflineError(ReadcliError):
    """Something needs the network (a model hub), which is not reachable; the message says what to do."""


class TrainingError(ReadcliError):
    """Training cannot go on (a non-finite loss, an empty training set)."""


def choices_text(choices: object) -> str:
    """Render valid choices for an error message: 'a, b, c'."""
    return ", ".join(str(c) for c in choices)  # type: ignore[attr-defined]


def reject_unknown_keys(dataclass_type: type, data: Mapping[str, object], what: str) -> None:
    """Refuse keys that are not fields of `dataclass_type` (config is strict: a typo is an error).

    `what` names the keys in the message, e.g. "method setting(s)": "unknown method setting(s) rank:
    valid keys are a, b, c".
    """
    known = {f.name for f in fields(dataclass_type)}
    unknown = sorted(set(data) - known)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise InvalidValueError(f"unknown {what} {shown}: valid keys are {choices_text(sorted(known))}")


def torch_load_reason(err: BaseException) -> str:
    """Why torch.load(weights_only=True) failed, in a few words for a one-line error.

    torch's own text runs to paragraphs and advises `weights_only=False`, i.e. running the file's
    code: readcli never says that. The unpickler's precise reason is kept when torch gives one.
    """
    text = " ".join(str(err).split())
    reason = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
    if reason:
        return reason.group(1).strip()
    if "Weights only load failed" in text or "weights_only" in text:
        return "not a tensor file that can be loaded without running code"
    return text[:200] or type(err).__name__
