"""`readcli extract-merge`: check that N sharded extract runs did every video exactly once, and merge them.

Reads the shard manifests (readcli/features/manifest.py) in each given folder. The expected items are
the full video list the shards recorded (or the videos given again with `videos`), plus their queries.
An item is done by a shard when its manifest says done or skipped (already current) and both feature
files are there. Every item must be done by exactly one shard: each one that is not is a `missing` or a
`duplicated` line. Job-level problems (a shard without a manifest, shards that disagree on N, on the
encoder or on the input list) are `problems` lines. With `into`, a complete set is copied into one
folder. See docs/distributed.md.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from readcli.errors import InvalidValueError
from readcli.features.manifest import FINISHED, ShardManifest, read_manifests
from readcli.features.queries import read_queries
from readcli.features.sources import collect_sources
from readcli.fileio import atomic_replace

Key = tuple[str, str]  # (kind, name)


@dataclass(frozen=True)
class MergeRequest:
    folders: tuple[Path, ...]  # the shards' --out folders (one shared folder counts once)
    videos: tuple[str, ...] = ()  # the source list again (files, folders, globs); () = the recorded one
    queries: Path | None = None  # the queries file again; None = the recorded qids
    into: Path | None = None  # copy the features of a complete set here


@dataclass
class MergeResult:
    shards: int = 0  # N
    manifests: int = 0
    expected: int = 0
    done: int = 0
    problems: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    copied: int = 0

    @property
    def ok(self) -> bool:
        return not (self.problems or self.missing or self.duplicated)


def run(request: MergeRequest) -> MergeResult:
    folders = list(dict.fromkeys(f.resolve() for f in request.folders))
    if not folders:
        raise InvalidValueError("extract-merge needs at least one FOLDER (the shards' --out folders)")
    for folder in folders:
        if not folder.is_dir():
            raise InvalidValueError(f"{folder} is not a folder: give the shards' --out folders")
    result = MergeResult()
    manifests: list[ShardManifest] = []
    for folder in folders:
        found = read_manifests(folder)
        if not found:
            result.problems.append(f"{folder}: no shard manifests (written by readcli extract --shard I/N)")
        manifests.extend(found)
    result.manifests = len(manifests)
    if not manifests:
        return result
    _check_job(manifests, result)
    expected = _expected(request, manifests, result)
    result.expected = len(expected)
    producers = _producers(manifests)
    _check_items(expected, producers, manifests, result)
    if request.into is not None and result.ok:
        result.copied = _copy(expected, producers, request.into.resolve())
    return result


def _check_job(manifests: list[ShardManifest], result: MergeResult) -> None:
    counts = sorted({m.count for m in manifests})
    result.shards = counts[-1]
    if len(counts) > 1:
        labels = ", ".join(m.label for m in manifests)
        result.problems.append(f"shard manifests disagree on N ({counts}): {labels}; remove the stale ones")
    present = {m.index for m in manifests}
    for index in range(result.shards):
        if index not in present:
            result.problems.append(f"shard {index}/{result.shards}: no manifest in the given folders")
    if len({repr(sorted(m.encoder.items())) for m in manifests}) > 1:
        result.problems.append(
            "the shards used different encoders or clip lengths: their features do not mix"
        )


def _expected(request: MergeRequest, manifests: list[ShardManifest], result: MergeResult) -> list[Key]:
    if request.videos:
        sources, _ = collect_sources(list(request.videos))
        videos = [s.name for s in sources]
    else:
        lists = {m.videos for m in manifests}
        if len(lists) > 1:
            sizes = ", ".join(f"{m.label}: {len(m.videos)}" for m in manifests)
            result.problems.append(
                f"the shards were given different video lists ({sizes}); give them the same"
            )
        videos = sorted({name for m in manifests for name in m.videos})
    if request.queries is not None:
        queries = [q.file_stem for q in read_queries(request.queries)]
    else:
        queries = sorted({stem for m in manifests for stem in m.queries})
    return [("video", name) for name in videos] + [("query", stem) for stem in queries]


def _producers(manifests: list[ShardManifest]) -> dict[Key, list[ShardManifest]]:
    """The shards whose manifest finished each item and whose folder holds both its files."""
    found: dict[Key, list[ShardManifest]] = defaultdict(list)
    for manifest in manifests:
        for item in manifest.items:
            files = [manifest.folder / f"{item.name}{suffix}" for suffix in (".npz", ".json")]
            if item.status in FINISHED and all(f.is_file() for f in files):
                found[(item.kind, item.name)].append(manifest)
    return found


def _check_items(
    expected: list[Key],
    producers: dict[Key, list[ShardManifest]],
    manifests: list[ShardManifest],
    result: MergeResult,
) -> None:
    reasons = {
        (item.kind, item.name): f"{m.label}: {item.status}{f' ({item.reason})' if item.reason else ''}"
        for m in manifests
        for item in m.items
        if item.status not in FINISHED or (item.kind, item.name) not in producers
    }
    for key in expected:
        kind, name = key
        done_by = producers.get(key, [])
        if not done_by:
            why = reasons.get(key, "in no shard's outcomes")
            if why.endswith(("done", "skipped")):
                why += ", but its feature files are not in that folder"
            result.missing.append(f"missing {kind} {name}: {why}")
        elif len(done_by) > 1:
            result.duplicated.append(
                f"duplicated {kind} {name}: done by {', '.join(m.label for m in done_by)}"
            )
        else:
            result.done += 1
    wanted = set(expected)
    for key, done_by in sorted(producers.items()):
        if key not in wanted:
            result.problems.append(
                f"unexpected {key[0]} {key[1]}: not in the source list ({done_by[0].label})"
            )


def _copy(expected: list[Key], producers: dict[Key, list[ShardManifest]], into: Path) -> int:
    """Copy each item's two feature files into INTO (atomically, the array before its metadata)."""
    into.mkdir(parents=True, exist_ok=True)
    copied = 0
    for key in expected:
        folder = producers[key][0].folder
        if folder == into:
            continue
        for suffix in (".npz", ".json"):
            source, target = folder / f"{key[1]}{suffix}", into / f"{key[1]}{suffix}"
            staging = target.with_name(f".{target.name}.partial")
            shutil.copy2(source, staging)
            atomic_replace(staging, target)
        copied += 1
    return copied
