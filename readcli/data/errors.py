"""Errors specific to dataset reading (subclasses of the shared typed errors in readcli.errors)."""

from __future__ import annotations

from pathlib import Path

from readcli.errors import InputFileError


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
