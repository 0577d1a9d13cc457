"""Shard manifests: what one `readcli extract --shard I/N` run was given and what it did.

Written to OUT/shards/shard-I-of-N.json at the end of every sharded run (atomically; a rerun of the
same shard replaces it), so `readcli extract-merge` can check, without the videos at hand, that every
video of the full sorted list was done by exactly one shard. See docs/distributed.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from readcli.errors import InputFileError
from readcli.fileio import atomic_write_json
from readcli.records import read_json_file, validate
from readcli.records.schemas_config import ShardManifestRecord

FORMAT = 1
SHARDS_DIR = "shards"
FINISHED = ("done", "skipped")  # skipped: current features were already there


@dataclass(frozen=True)
class ManifestItem:
    kind: str  # "video" | "query"
    name: str  # the feature file's stem
    status: str  # "done" | "skipped" | "failed"
    reason: str | None = None


@dataclass(frozen=True)
class ShardManifest:
    """One shard's record: the full input list (every shard's), and this shard's outcomes."""

    folder: Path  # the --out folder the manifest (and the shard's features) are in
    index: int
    count: int
    encoder: dict[str, Any]  # the EncoderSpec and clip length the features were made with
    videos: tuple[str, ...]  # names of the full sorted video list, before sharding
    queries: tuple[str, ...]  # file stems of all queries, before sharding
    items: tuple[ManifestItem, ...]

    @property
    def label(self) -> str:
        return f"shard {self.index}/{self.count} ({self.folder})"


def manifest_path(folder: Path, index: int, count: int) -> Path:
    return folder / SHARDS_DIR / f"shard-{index}-of-{count}.json"


def write_manifest(manifest: ShardManifest) -> Path:
    path = manifest_path(manifest.folder, manifest.index, manifest.count)
    record = {
        "format": FORMAT,
        "shard": f"{manifest.index}/{manifest.count}",
        "encoder": manifest.encoder,
        "videos": list(manifest.videos),
        "queries": list(manifest.queries),
        "items": [item.__dict__ for item in manifest.items],
    }
    atomic_write_json(path, record)
    return path


def read_manifests(folder: Path) -> list[ShardManifest]:
    """Every manifest in FOLDER/shards, sorted by shard; a damaged one is an InputFileError."""
    return [_read(path, folder) for path in sorted((folder / SHARDS_DIR).glob("shard-*-of-*.json"))]


def _read(path: Path, folder: Path) -> ShardManifest:
    try:
        raw = read_json_file(path)  # bounded nesting, no NaN/Infinity constants
        if not isinstance(raw, dict):
            raise InputFileError(f"{path}: expected a JSON object, found {type(raw).__name__}")
        record = validate(ShardManifestRecord, raw, str(path))
        index, count = (int(part) for part in record.shard.split("/"))
        items = tuple(ManifestItem(i.kind, i.name, i.status, i.reason) for i in record.items)
        return ShardManifest(
            folder, index, count, dict(record.encoder), tuple(record.videos), tuple(record.queries), items
        )
    except InputFileError as err:
        detail = str(err).removeprefix(f"{path}: ")
        raise InputFileError(
            f"{path}: not a readable shard manifest ({detail}); "
            "rerun that shard's readcli extract to rewrite it"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputFileError(
            f"{path}: not a readable shard manifest ({type(err).__name__}: {err}); "
            "rerun that shard's readcli extract to rewrite it"
        ) from None
