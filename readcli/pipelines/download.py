"""`readcli download PRESET...`: fetch the weights presets need, verified, into the caches (docs/models.md).

URL files go to where readcli reads them (`$ENV_VAR` when set, else `<cache>/<preset>/<file>`), over
HTTP(S) with resume, checked against the card's digests, published atomically. Hub ids go to the
Hugging Face cache through huggingface_hub. A file already present and matching its card is not
fetched again. Offline (`HF_HUB_OFFLINE`, or the host unreachable) one line says what would be
fetched from where. A present file whose digest differs is never overwritten: the user removes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from readcli.errors import InputFileError, InvalidValueError, OfflineError
from readcli.weights import hub  # by module: tests stand in for its network calls
from readcli.weights.catalog import CHOOSE, HUB, WeightFile, canonical, preset_files
from readcli.weights.digest import verify
from readcli.weights.http import DownloadError, fetch
from readcli.weights.status import DAMAGED, PRESENT, file_status

Event = Callable[[WeightFile, str, int, "int | None"], None]  # (file, stage, bytes, total bytes)


@dataclass(frozen=True)
class DownloadRequest:
    presets: tuple[str, ...]


@dataclass(frozen=True)
class FileOutcome:
    entry: WeightFile
    action: str  # "present" (nothing fetched), "fetched", "resumed"
    path: Path
    checked: str  # digests verified; "" when the card records none


@dataclass(frozen=True)
class DownloadResult:
    files: tuple[FileOutcome, ...]


def plan(request: DownloadRequest) -> list[WeightFile]:
    """The files the presets need, each once, in order; unknown names refused before anything runs."""
    if not request.presets:
        raise InvalidValueError("name at least one preset, e.g. readcli download moment-detr-clip")
    seen: dict[tuple[str, str], WeightFile] = {}
    for name in request.presets:
        for entry in preset_files(canonical(name)):
            seen.setdefault(entry.key, entry)
    return list(seen.values())


def run(request: DownloadRequest, progress: Event | None = None) -> DownloadResult:
    entries = plan(request)
    command = "readcli download " + " ".join(request.presets)
    outcomes: dict[tuple[str, str], FileOutcome] = {}
    missing: list[WeightFile] = []
    for entry in entries:
        status = file_status(entry)
        if status.state == PRESENT and status.path is not None:
            outcomes[entry.key] = FileOutcome(entry, "present", status.path, status.checked)
        elif status.state == DAMAGED:
            fix = (
                _remove_hint(entry)
                if entry.kind == HUB
                else f"remove it (or point {entry.env_var} elsewhere) and run {command} again"
            )
            raise InputFileError(
                f"{status.path} is there but does not match preset {entry.preset} ({status.problem}); {fix}"
            )
        elif entry.kind == CHOOSE:
            raise InvalidValueError(_choose_text(entry))
        else:
            missing.append(entry)
    if missing:
        reason = hub.offline_reason()
        if reason is not None:
            raise OfflineError(f"offline ({reason}): {_would_fetch(missing)}")
    for number, entry in enumerate(missing):
        try:
            outcomes[entry.key] = _fetch(entry, command, progress)
        except OfflineError as err:
            raise OfflineError(f"{err}: {_would_fetch(missing[number:])}") from None
    return DownloadResult(tuple(outcomes[entry.key] for entry in entries))


def _fetch(entry: WeightFile, command: str, progress: Event | None) -> FileOutcome:
    report = progress or (lambda *event: None)
    report(entry, "start", 0, entry.size)
    if entry.kind == HUB:
        outcome = _fetch_hub(entry)
        report(entry, "done", outcome.path.stat().st_size, outcome.path.stat().st_size)
        return outcome
    target = entry.location()
    assert target is not None  # a URL file always has a location
    fetched = fetch(
        entry, target, progress=lambda done, total: report(entry, "bytes", done, total), retry=command
    )
    report(entry, "done", target.stat().st_size, target.stat().st_size)
    action = "resumed" if fetched.resumed_from else "fetched"
    return FileOutcome(entry, action, fetched.path, fetched.checked)


def _fetch_hub(entry: WeightFile) -> FileOutcome:
    """Snapshot the repository's files, then check the weights file against the card and every fetched
    file against the digests the hub publishes (huggingface_hub's own verification)."""
    folder = hub.snapshot(
        entry.source, entry.revision, patterns=entry.patterns, what=f"preset {entry.preset}"
    )
    path = folder / entry.file_name
    if not path.is_file():
        raise DownloadError(
            f"{entry.source} has no {entry.file_name} (preset {entry.preset}'s card names it)"
        )
    verdict = verify(path, entry, cached=False)
    if not verdict.ok:
        raise DownloadError(f"{path} ({entry.source}) has {verdict.problem}; {_remove_hint(entry)}")
    checked, differ = hub.hub_mismatches(entry.source, entry.revision)
    if differ:
        raise DownloadError(
            f"{entry.source}: the cached {', '.join(differ[:3])} differ from the hub's digests; "
            f"{_remove_hint(entry)}"
        )
    digests = f"hub digests of {checked} files" if checked else ""
    return FileOutcome(entry, "fetched", path, " + ".join(p for p in (verdict.checked, digests) if p))


def _remove_hint(entry: WeightFile) -> str:
    command = f"readcli download {entry.preset}"
    return f"remove the cached copy (hf cache rm model/{entry.source}) and run {command} again"


def _would_fetch(entries: list[WeightFile]) -> str:
    parts = []
    for entry in entries:
        if entry.kind == HUB:
            rev = f"@{entry.revision}" if entry.revision else ""
            parts.append(f"{entry.source}{rev} ({entry.preset}) from the Hugging Face Hub")
        else:
            parts.append(f"{entry.file_name} ({entry.preset}) from {entry.fetch_url()} to {entry.location()}")
    return "readcli download would fetch " + "; ".join(parts)


def _choose_text(entry: WeightFile) -> str:
    return (
        f"preset {entry.preset} has one official checkpoint per domain and none by default, so readcli "
        f"cannot choose: download the file of your domain from {entry.source} (the names are in the card, "
        f"models/{entry.preset}.json) and put it at {entry.location()}, or set {entry.env_var} to its path"
    )
