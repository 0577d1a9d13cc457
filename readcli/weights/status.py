"""Whether a preset's weights file is here, where, how large, and whether it matches its card.

Never touches the network: URL files are looked up where readcli reads them (`WeightFile.location`),
hub files in the Hugging Face cache. Digests of present files are checked (sha256 remembered by
path, size and mtime, so a second listing does not re-hash hundreds of megabytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from readcli.weights.catalog import HUB, WeightFile
from readcli.weights.digest import verify
from readcli.weights.hub import cached_file

PRESENT, MISSING, DAMAGED = "present", "missing", "damaged"


@dataclass(frozen=True)
class FileStatus:
    entry: WeightFile
    state: str  # PRESENT, MISSING or DAMAGED (a recorded digest differs)
    path: Path | None  # where the file is, or where readcli looks for it (None: a hub file not cached)
    size: int | None  # bytes on disk when present, else the card's size
    checked: str  # digests that matched ("" when none is recorded or the file is missing)
    problem: str = ""

    @property
    def verification(self) -> str:
        """What was checked, in words: "sha256 ok", "no published digest", "sha256 differs"."""
        if self.state == DAMAGED:
            return self.problem
        if self.state == MISSING:
            return "—"
        return f"{self.checked} ok" if self.checked else "no published digest"


def file_status(entry: WeightFile, *, check_digest: bool = True) -> FileStatus:
    if entry.kind == HUB:
        path = cached_file(entry.source, entry.file_name, entry.revision)
    else:
        path = entry.location()
    if path is None or not path.is_file():
        return FileStatus(entry, MISSING, path, entry.size, "")
    size = path.stat().st_size
    if not check_digest:
        return FileStatus(entry, PRESENT, path, size, "")
    verdict = verify(path, entry)
    if not verdict.ok:
        return FileStatus(entry, DAMAGED, path, size, "", verdict.problem)
    return FileStatus(entry, PRESENT, path, size, verdict.checked)
