"""`readcli models`: every preset, the weights it needs, and whether each is here (docs/models.md).

No network: the listing reads the cards and looks in readcli's cache and the Hugging Face cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from readcli.backbones.presets import FRESH_PRESETS, PRESET_ALIASES
from readcli.weights.catalog import card_names, preset_files
from readcli.weights.status import FileStatus, file_status


@dataclass(frozen=True)
class PresetRow:
    preset: str
    aliases: tuple[str, ...]  # other names of this preset (`umt` for `umt-s`)
    fresh: tuple[str, ...]  # presets built from this card freshly initialised, needing no file
    files: tuple[FileStatus, ...]

    @property
    def ready(self) -> bool:
        return all(f.state == "present" for f in self.files)


@dataclass(frozen=True)
class ModelsResult:
    presets: tuple[PresetRow, ...]

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "preset": row.preset,
                "aliases": list(row.aliases),
                "fresh_presets": list(row.fresh),
                "ready": row.ready,
                "download": f"readcli download {row.preset}",
                "files": [_file_json(status) for status in row.files],
            }
            for row in self.presets
        ]


def _file_json(status: FileStatus) -> dict[str, Any]:
    entry = status.entry
    return {
        "preset": entry.preset,
        "role": entry.role,
        "file": entry.file_name,
        "kind": entry.kind,
        "source": entry.source,
        "revision": entry.revision,
        "state": status.state,
        "path": None if status.path is None else str(status.path),
        "size_bytes": status.size,
        "license": entry.license,
        "sha256": entry.sha256,
        "git_blob_sha1": entry.git_blob_sha1,
        "verified": status.checked or None,
        "problem": status.problem or None,
        "env_var": entry.env_var,
    }


def list_models(*, check_digests: bool = True) -> ModelsResult:
    rows = []
    for name in card_names():
        statuses = tuple(file_status(entry, check_digest=check_digests) for entry in preset_files(name))
        aliases = tuple(sorted(alias for alias, target in PRESET_ALIASES.items() if target == name))
        fresh = tuple(sorted(preset for preset, card in FRESH_PRESETS.items() if card == name))
        rows.append(PresetRow(name, aliases, fresh, statuses))
    return ModelsResult(tuple(rows))
