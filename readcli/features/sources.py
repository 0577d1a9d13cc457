"""Turning `PATH...` (files, directories, globs) into a sorted list of videos, named and sharded.

- A file named on the command line is taken whatever its extension (a bad one fails on its own).
- A directory contributes the files under it, recursively, whose extension is a video extension.
- A pattern with *, ? or [ is expanded (** recurses); one that matches nothing is reported.
- The feature name is the file's stem. Two different files with the same stem would overwrite each
  other's features, so both are reported as failed (the rest go on) rather than silently renamed:
  annotation files refer to videos by that stem.
- `--shard I/N` (I in 0..N-1) keeps every N-th video of the sorted list, starting at I, so N machines
  given the same inputs split the work without overlap.
"""

from __future__ import annotations

import glob
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from readcli.errors import InvalidValueError

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".mpg", ".mpeg", ".flv", ".wmv", ".ts", ".3gp", ".ogv"}
)
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Source:
    """One input: a path to try, or a problem found before decoding (then `problem` says what)."""

    path: Path
    name: str
    problem: str | None = None


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str | None) -> Shard | None:
    """'I/N' with 0 <= I < N; None when not given."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise InvalidValueError(f"--shard {text!r} is not of the form I/N with I in 0..N-1 (e.g. 0/4)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise InvalidValueError(
            f"--shard {text}: I must be in 0..N-1 and N at least 1 (e.g. 0/{max(count, 2)})"
        )
    return Shard(index, count)


def _expand(arg: str) -> tuple[list[Path], str | None]:
    """The video files one argument stands for, or a problem with the argument."""
    path = Path(arg).expanduser()
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        return found, None if found else f"{arg}: no video files in this directory"
    if path.exists() or not _GLOB_CHARS.search(arg):
        return [path], None  # a named file, or a missing one that decoding reports
    matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
    files = [p for p in matches if p.is_file()]
    return files, None if files else f"{arg}: no files match this pattern"


def collect_sources(args: list[str]) -> tuple[list[Source], list[str]]:
    """Videos sorted by name, de-duplicated, collisions marked; and the arguments that gave nothing."""
    unique: dict[Path, Path] = {}
    problems: list[str] = []
    for arg in args:
        files, problem = _expand(arg)
        if problem:
            problems.append(problem)
        for file in files:
            try:
                resolved = file.resolve()
            except (RuntimeError, OSError):  # a symbolic link loop (RuntimeError before Python 3.13)
                problems.append(f"{file}: a symbolic link loop (it leads back to itself): give a video file")
                continue
            unique.setdefault(resolved, file)
    by_name: dict[str, list[Path]] = defaultdict(list)
    for resolved in unique:
        by_name[resolved.stem].append(resolved)
    sources = []
    # Sorted by name first, so machines that mount the data at different places agree on the order.
    for resolved, given in sorted(unique.items(), key=lambda kv: (kv[0].stem, str(kv[0]))):
        clash = [str(p) for p in by_name[resolved.stem] if p != resolved]
        problem = (
            f"{given}: its feature name {resolved.stem!r} is also the name of {', '.join(clash)}; "
            "rename one or extract them into different --out folders"
            if clash
            else None
        )
        sources.append(Source(path=given, name=resolved.stem, problem=problem))
    return sources, problems


def take_shard(items: list[Source], shard: Shard | None) -> list[Source]:
    """Every N-th item of the sorted list, starting at I."""
    if shard is None:
        return items
    return items[shard.index :: shard.count]
