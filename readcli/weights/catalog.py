"""What each preset's weights are, read from its card in `models/`: one `WeightFile` per file to fetch.

A card names its own weights in `weights` (a file from a URL: backbone checkpoints, CLIP) or
`text_model` (a Hugging Face Hub id: the BART/T5 of the vision-guided presets). Its `download`
object adds what fetching needs and the older fields lack: `requires` (other presets whose weights
the commands of this one read, e.g. CLIP for Moment-DETR's features), `size_bytes`,
`git_blob_sha1`, and for hub ids the `revision` and the file `patterns` to fetch. A value nobody
could establish is `null` with a `*_notes` field saying so; it is never guessed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from readcli.backbones.presets import FRESH_PRESETS, PRESET_ALIASES, cards_dir
from readcli.backbones.presets import read_card as read_card_file
from readcli.errors import InputFileError, InvalidValueError, choices_text
from readcli.fileio import cache_dir

URL, HUB, CHOOSE = "url", "hub", "choose"  # CHOOSE: one official file per domain, none by default
MIRROR_ENV = "READCLI_WEIGHTS_MIRROR"  # fetch URL files from <mirror>/<preset>/<file name> instead
DEFAULT_HUB_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.model")  # no .bin/.h5/.msgpack copies


@dataclass(frozen=True)
class WeightFile:
    """One weights file (or hub repository) a preset needs, as its card describes it."""

    preset: str  # the card that describes the file
    role: str  # "backbone", "CLIP" or "text model"
    kind: str  # URL, HUB or CHOOSE
    source: str  # the URL; the hub id (with "@revision" when pinned); CHOOSE: where the files are listed
    file_name: str  # URL: the local file name; HUB: the weights file checked in the repository
    env_var: str | None  # a local copy the user points to instead (file or folder)
    sha256: str | None
    git_blob_sha1: str | None  # the file's git blob id in the publisher's repository
    size: int | None  # bytes, when the card records it
    license: str
    revision: str | None = None  # HUB only
    patterns: tuple[str, ...] = ()  # HUB only: the repository files fetched

    @property
    def key(self) -> tuple[str, str]:
        return (self.preset, self.file_name)

    def location(self) -> Path | None:
        """Where readcli reads (and `download` writes) a URL file: the env var's path, else the cache."""
        if self.kind == HUB:
            return None
        override = os.environ.get(self.env_var) if self.env_var else None
        path = Path(override).expanduser() if override else cache_dir() / self.preset / self.file_name
        return path / self.file_name if path.is_dir() else path

    def fetch_url(self) -> str:
        """The URL `download` fetches: the card's, or the mirror's copy when $READCLI_WEIGHTS_MIRROR is set"""
        mirror = os.environ.get(MIRROR_ENV, "").strip()
        if mirror and self.kind == URL:
            return f"{mirror.rstrip('/')}/{self.preset}/{self.file_name}"
        return self.source


def card_names() -> list[str]:
    """Every preset card in models/ (a JSON file naming `weights` or a `text_model`), sorted."""
    names = []
    # through the package's cards (a wheel ships them; docs/backbones.md), not the checkout's folder
    for entry in sorted(cards_dir().iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".json"):
            continue
        card, _ = read_card_file(entry.name)
        if "weights" in card or "text_model" in card:
            names.append(entry.name.removesuffix(".json"))
    return names


def canonical(name: str) -> str:
    """A preset name or alias as its card name; InvalidValueError naming the choices otherwise."""
    name = PRESET_ALIASES.get(name, name)
    if name in FRESH_PRESETS:
        raise InvalidValueError(f"preset {name} is freshly initialised and needs no weights file")
    if name not in card_names():
        known = sorted([*card_names(), *PRESET_ALIASES])
        raise InvalidValueError(f"unknown preset {name!r}; presets with weights: {choices_text(known)}")
    return name


def read_card(name: str) -> dict[str, Any]:
    return read_card_file(f"{name}.json")[0]


def own_files(name: str) -> list[WeightFile]:
    """The files a card describes itself (not those of the presets it requires)."""
    card = read_card(name)
    where = cards_dir().joinpath(f"{name}.json")
    extra = _download_section(name, card)
    try:
        if "text_model" in card:
            return [_hub_file(name, card["text_model"], extra)]
        return [_url_file(name, card["architecture"], card["weights"], extra)]
    except (KeyError, TypeError, ValueError) as err:
        raise InputFileError(f"{where}: preset card is missing or mangles field {err}") from None


def preset_files(name: str) -> list[WeightFile]:
    """Everything preset `name` needs: its own files, then those of the presets its card requires."""
    name = canonical(name)
    files = own_files(name)
    for required in _download_section(name, read_card(name)).get("requires", []):
        files += own_files(canonical(str(required)))
    return files


def _download_section(name: str, card: dict[str, Any]) -> dict[str, Any]:
    section = card.get("download") or {}
    if not isinstance(section, dict) or not isinstance(section.get("requires", []), list):
        raise InputFileError(
            f"{cards_dir().joinpath(f'{name}.json')}: field 'download' must be an object, 'requires' a list"
        )
    return section


def _url_file(name: str, architecture: str, weights: dict[str, Any], extra: dict[str, Any]) -> WeightFile:
    source = weights["source"]
    files = source.get("files")
    kind = CHOOSE if isinstance(files, dict) and files else URL
    where = source.get("download_base") if kind == CHOOSE else source["url"]
    role = "CLIP" if architecture == "clip" else "backbone"
    return WeightFile(
        preset=name, role=role, kind=kind, source=str(where), file_name=str(weights["file_name"]),
        env_var=weights.get("env_var"), sha256=_hex(weights.get("sha256"), 64),
        git_blob_sha1=_hex(extra.get("git_blob_sha1"), 40), size=_size(extra.get("size_bytes")),
        license=str(source.get("license", "not stated")),
    )  # fmt: skip


def _hub_file(name: str, text: dict[str, Any], extra: dict[str, Any]) -> WeightFile:
    revision = extra.get("revision")
    patterns = extra.get("patterns") or list(DEFAULT_HUB_PATTERNS)
    return WeightFile(
        preset=name, role="text model", kind=HUB, source=str(text["hub_id"]),
        file_name=str(extra.get("weights_file", "model.safetensors")), env_var=text.get("env_var"),
        sha256=_hex(extra.get("sha256"), 64), git_blob_sha1=None, size=_size(extra.get("size_bytes")),
        license=str(text.get("license", "not stated")), revision=str(revision) if revision else None,
        patterns=tuple(str(p) for p in patterns),
    )  # fmt: skip


def _hex(value: object, length: int) -> str | None:
    if value is None:
        return None
    text = str(value).lower()
    if len(text) != length or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"digest {value!r} (expected {length} hex digits or null)")
    return text


def _size(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"size_bytes {value!r} (expected a positive integer or null)")
    return value


def local_copy(url: str) -> Path | None:
    """The file a card publishes at `url`, where `readcli download` put it, or None."""
    for name in card_names():
        for entry in own_files(name):
            path = entry.location() if entry.kind == URL and entry.source == url else None
            if path is not None and path.is_file():
                return path
    return None
