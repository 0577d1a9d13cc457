"""Checking a weights file against the digests its card records (sha256, and/or its git blob id).

OpenAI publishes each CLIP file's sha256 in its URL; the official Moment-DETR checkpoint is a plain
git blob in its repository, so its git blob id (sha1 over `blob <size>\\0` + the bytes) is a digest
its publisher records. A card with neither leaves the file unverified, and readcli says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from readcli.features.weights import file_sha256
from readcli.weights.catalog import WeightFile

_BLOCK = 4 * 2**20


@dataclass(frozen=True)
class Verdict:
    ok: bool  # False: a recorded digest differs
    checked: str  # "sha256", "git blob sha1", "sha256 + git blob sha1", or "" when the card has none
    problem: str = ""  # the differing digest, for the message


def git_blob_sha1(path: Path) -> str:
    """The id git gives the file's content (`git hash-object`)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: Path, *, cached: bool) -> str:
    """sha256 of a file; `cached`: remembered by path, size and mtime (a published file in place)."""
    if cached:
        return file_sha256(path)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, entry: WeightFile, *, cached: bool = True) -> Verdict:
    """Compare `path` with every digest `entry` records; `cached=False` for a fresh download."""
    checked = []
    if entry.sha256:
        found = sha256_of(path, cached=cached)
        if found != entry.sha256:
            return Verdict(False, "sha256", f"sha256 {found}, the card records {entry.sha256}")
        checked.append("sha256")
    if entry.git_blob_sha1:
        found = git_blob_sha1(path)
        if found != entry.git_blob_sha1:
            return Verdict(
                False, "git blob sha1", f"git blob sha1 {found}, the card records {entry.git_blob_sha1}"
            )
        checked.append("git blob sha1")
    return Verdict(True, " + ".join(checked))
