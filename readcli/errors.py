"""Typed errors. Library code raises these; the CLI's one error boundary turns them into one line.

Every message names the bad value and what would be valid, so a user can fix the input without
reading a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path


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


class FeatureMissingError(InputFileError):
    """A feature file that an annotation row needs is absent; names the id and the directory."""

    def __init__(self, *, kind: str, item_id: object, path: Path, total_missing: int = 1) -> None:
        self.kind = kind
        self.item_id = item_id
        self.path = Path(path)
        self.total_missing = total_missing
        more = f" ({total_missing} rows in all lack a file)" if total_missing > 1 else ""
        super().__init__(
            f"no {kind} feature file for {item_id!s}: expected {self.path.name} in {self.path.parent}"
            f"{more}; extract the features, or pass --skip-missing to drop such rows"
        )


class EmptyDatasetError(InputFileError):
    """A split that ends up with no usable rows (after filtering, skipping or sub-sampling)."""


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
