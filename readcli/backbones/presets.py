"""Preset cards: names -> `models/<name>.json`, reading a card, and finding a preset's weights file.

A card (JSON) names an architecture, its configuration, where the weights come from (`weights`:
local file name, env var, source, sha256) and the features the model expects. Cards hold no
weights, and nothing is ever downloaded: a missing file is one error that says where to get it and
where to put it. `PRESET_ALIASES` are other spellings of a preset (`umt` = `umt-s`);
`FRESH_PRESETS` build a card's configuration freshly initialised (`registry.load_backbone`).
Cards are edited in the repository's top-level `models/`; the build ships them in the package as
`readcli/models/` (setup.py), and `cards_dir` finds them in either place.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from readcli.backbones.moment_detr.config import read_json_object
from readcli.errors import CheckpointError, InputFileError, InvalidValueError, choices_text
from readcli.fileio import cache_dir
from readcli.records import parse_json, validate
from readcli.records.schemas_config import PresetCardRecord

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"  # where cards are edited (a source checkout)
CARDS_PACKAGE_DIR = "models"  # readcli/models/ in a built package: MODELS_DIR's cards (setup.py)
PRESETS: dict[str, str] = {
    "moment-detr-clip": "moment-detr-clip.json",
    "clip-vit-b-32": "clip-vit-b-32.json",
    "umt-s": "umt-s.json",
}
PRESET_ALIASES: dict[str, str] = {"umt": "umt-s"}
# preset name -> the card whose configuration is built freshly initialised (no weights file)
FRESH_PRESETS: dict[str, str] = {"umt-s-scratch": "umt-s"}
FRESH_SEED = 0  # fixed, so a fresh preset is the same model in every run, --resume and bundle check


@dataclass(frozen=True)
class PresetCard:
    """A preset card as read from models/<name>.json (the fields readcli acts on, plus the raw card)."""

    name: str
    architecture: str
    configuration: dict[str, Any]
    weights_format: str
    file_name: str
    env_var: str
    source: dict[str, Any]
    sha256: str | None
    raw: dict[str, Any]


def preset_names() -> list[str]:
    """Every name `load_card` accepts: presets, their aliases and the freshly initialised presets."""
    return sorted([*PRESETS, *PRESET_ALIASES, *FRESH_PRESETS])


def backbone_preset_names() -> list[str]:
    """`preset_names()` without the feature extractors' cards (clip-vit-b-32 is a card, not a backbone)."""
    return [n for n in preset_names() if read_json_object(MODELS_DIR / PRESETS[str(card_name(n))]).get(
        "architecture") != "clip"]  # fmt: skip


def card_name(name: str) -> str | None:
    """The card a preset name (or alias, or fresh preset) stands for; None if it names none."""
    name = PRESET_ALIASES.get(name, FRESH_PRESETS.get(name, name))
    return name if name in PRESETS else None


def cards_dir() -> Traversable:
    """The preset cards of the imported readcli: its package's `models/` (a wheel or any non-editable
    install, read through importlib.resources), else the top-level `models/` of the source checkout
    it is imported from (an editable install, or the repository on PYTHONPATH)."""
    packaged = resources.files("readcli").joinpath(CARDS_PACKAGE_DIR)
    return packaged if packaged.is_dir() else MODELS_DIR


def read_card(file_name: str) -> tuple[dict[str, Any], str]:
    """A card's JSON object and where it was read (for messages); one-line InputFileError otherwise."""
    card = cards_dir().joinpath(file_name)
    if isinstance(card, Path):
        return read_json_object(card), str(card)
    try:  # a package served from an archive: no file-system path, read through the loader
        data = parse_json(card.read_text(encoding="utf-8"), str(card))
    except FileNotFoundError:
        raise InputFileError(f"preset card not found: {card}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"{card}: not a readable JSON file ({err})") from None
    if not isinstance(data, dict):
        raise InputFileError(f"{card}: expected a JSON object at the top level, found {type(data).__name__}")
    return data, str(card)


def load_card(name: str) -> PresetCard:
    """Read and check the card of preset `name` (an alias or a fresh preset reads its card)."""
    card = card_name(name)
    if card is None:
        raise InvalidValueError(
            f"unknown backbone preset {name!r}; choices: {choices_text(backbone_preset_names())}"
        )
    raw, path = read_card(PRESETS[card])
    try:
        validate(PresetCardRecord, raw, f"{path}")  # types; plain names (file_name joins a cache path)
        weights = raw["weights"]
        return PresetCard(
            name=raw["name"], architecture=raw["architecture"], configuration=dict(raw["configuration"]),
            weights_format=weights["format"], file_name=weights["file_name"], env_var=weights["env_var"],
            source=dict(weights["source"]), sha256=weights.get("sha256"), raw=raw,
        )  # fmt: skip
    except (KeyError, TypeError) as err:
        raise InputFileError(f"{path}: preset card is missing or mangles field {err}") from None


def resolve_weights(card: PresetCard) -> Path:
    """The local weights file of a preset: the card's env var if set, else <cache>/<preset>/<file_name>."""
    default = cache_dir() / card.name / card.file_name
    override = os.environ.get(card.env_var)
    path = Path(override).expanduser() if override else default
    if path.is_dir():
        path = path / card.file_name
    if path.is_file():
        _check_digest(path, card)
        return path
    origin = f"{card.env_var}={override}" if override else "the default location"
    files = card.source.get("files")
    what = "one of the official files" if files else card.file_name
    fresh = [name for name, target in FRESH_PRESETS.items() if target == card.name]
    hint = f"; or use preset {fresh[0]} for a freshly initialised model (no weights)" if fresh else ""
    command = "" if files else f"run `readcli download {card.name}`, or "  # per-domain files: user's pick
    raise CheckpointError(
        f"preset {card.name}: weights not found at {path} ({origin}): {command}download {what} from "
        f"{source_text(card.source)} and put it at {default}, or set {card.env_var} to its path{hint}"
    )


def source_text(source: dict[str, Any]) -> str:
    """Where a card's weights come from, as one readable line (a URL, a hub id, or a repository)."""
    repository = source.get("repository")
    files = source.get("files")
    if isinstance(files, dict) and source.get("download_base"):
        names = sorted(_file_names(files))
        examples = " or ".join(names[:1] + names[-1:]) if names else "?"
        listed = f"; all listed in {repository}" + (f" {source['path']}" if source.get("path") else "")
        return f"{source['download_base']} (e.g. {examples}{listed if repository else ''})"
    if source.get("url"):
        return str(source["url"])
    if source.get("hf_hub"):
        return f"the Hugging Face Hub ({source['hf_hub']})"
    if repository:
        return f"{repository} ({source['path']})" if source.get("path") else str(repository)
    return "the model's publisher (the card names no source)"


def _file_names(files: dict[str, Any]) -> list[str]:
    """The file names in a card's (possibly nested) `files` mapping."""
    out: list[str] = []
    for value in files.values():
        out += _file_names(value) if isinstance(value, dict) else [str(value)]
    return out


def _check_digest(path: Path, card: PresetCard) -> None:
    if not card.sha256:
        return
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != card.sha256.lower():
        raise CheckpointError(
            f"{path}: sha256 {digest.hexdigest()} does not match preset {card.name} ({card.sha256}); "
            "the download is incomplete or another file"
        )
