"""Are the weights a run used the published ones? `ground`, `summarize` and `inspect-ot` say when not.

Each weights file a run reads (the backbone, CLIP, a vision-guided text model) gets one `WeightsCheck`:

- `published`: its digest is one a card (models/*.json) or the publisher records (OpenAI's CLIP URLs
  carry the file's sha256), or it is open_clip's `openai` download for the model;
- `adapter`: not necessarily published, but the adapter bundle in use was trained on it (the bundle's
  fingerprint check passed for the backbone; for CLIP, the bundle's training features record its digest);
- `unpublished`: neither (random weights, another checkpoint, a freshly initialised preset);
- `unverified`: no digest is published to compare with (UMT, BART's weights): nothing is claimed.

`Provenance.published` is False when any file is unpublished (one warning line, and the --json field
`published_weights`), True when every file is published or adapter-trained, None otherwise. Digests
are cached by path, size and mtime (readcli/features/weights.py), so a re-run hashes nothing.
docs/models.md ("Published weights").
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from readcli.backbones.presets import FRESH_PRESETS, card_name, load_card
from readcli.backbones.presets import resolve_weights as preset_weights
from readcli.errors import InputFileError
from readcli.features.weights import file_sha256
from readcli.fileio import atomic_write_json, cache_dir
from readcli.records import parse_json
from readcli.weights import digest as weight_digest
from readcli.weights.catalog import URL, WeightFile, card_names, own_files, read_card
from readcli.weights.hub import cached_file

if TYPE_CHECKING:  # clip_encoder imports torch; provenance of features alone must not
    from readcli.features.clip_encoder import EncoderSpec

log = logging.getLogger(__name__)

PUBLISHED, ADAPTER, UNPUBLISHED, UNVERIFIED = "published", "adapter", "unpublished", "unverified"
_BLOB_CACHE = "git_blob_ids.json"
_SHA256_IN_URL = re.compile(r"/([0-9a-f]{64})/")


@dataclass(frozen=True)
class WeightsCheck:
    role: str  # "backbone", "CLIP", "text model"
    file: str  # the file or folder (or preset) the run read
    state: str  # PUBLISHED, ADAPTER, UNPUBLISHED or UNVERIFIED
    why: str  # what was compared, in words

    def to_json(self) -> dict[str, str]:
        return {"role": self.role, "file": self.file, "state": self.state, "why": self.why}


@dataclass(frozen=True)
class Provenance:
    checks: tuple[WeightsCheck, ...]

    @property
    def published(self) -> bool | None:
        states = {c.state for c in self.checks}
        if not states:
            return None  # no weights file was read (features given), nothing to claim
        if UNPUBLISHED in states:
            return False
        return True if states <= {PUBLISHED, ADAPTER} else None

    @property
    def warning(self) -> str | None:
        """One line when some weights are unpublished and no adapter was trained on them."""
        bad = [c for c in self.checks if c.state == UNPUBLISHED]
        if not bad:
            return None
        named = "; ".join(f"{c.role} {c.file} ({c.why})" for c in bad)
        return (
            f"these results come from weights that are not the published ones and that no adapter was "
            f"trained on, so they say nothing about the method: {named}"
        )

    def to_json(self) -> dict[str, Any]:
        return {"published_weights": self.published, "weights": [c.to_json() for c in self.checks]}


def git_blob_sha1(path: Path) -> str:
    """`git hash-object` of a file, remembered by (resolved path, size, mtime_ns) like file_sha256."""
    path = path.resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    store = cache_dir() / _BLOB_CACHE
    try:
        cached = parse_json(store.read_text(encoding="utf-8"), str(store))
        cached = cached if isinstance(cached, dict) else {}
    except (OSError, ValueError, InputFileError):  # a damaged cache is rebuilt
        cached = {}
    if isinstance(cached.get(key), str):
        return str(cached[key])
    cached[key] = value = weight_digest.git_blob_sha1(path)  # looked up on the module: tests count the calls
    try:
        atomic_write_json(store, cached)
    except (OSError, InputFileError) as err:  # a read-only cache only costs a re-hash next time
        log.debug("cannot update the git blob id cache %s: %s", store, err)
    return value


def _short(digest: str) -> str:
    return digest[:12] + "…"


# --- backbones -----------------------------------------------------------------------------------


def _backbone_entries() -> list[WeightFile]:
    """Every URL-file entry of a backbone card (not CLIP), with the digests it records."""
    entries = []
    for name in card_names():
        entries += [e for e in own_files(name) if e.kind == URL and e.role == "backbone"]
    return entries


def _match_file(path: Path, entries: Iterable[WeightFile]) -> tuple[WeightFile | None, bool]:
    """(the entry whose digest `path` has, whether any entry records a digest at all)."""
    entries = [e for e in entries if e.sha256 or e.git_blob_sha1]
    if not entries:
        return None, False
    sha = file_sha256(path) if any(e.sha256 for e in entries) else None
    blob = git_blob_sha1(path) if any(e.git_blob_sha1 for e in entries) else None
    for entry in entries:
        if (entry.sha256 and entry.sha256 == sha) or (entry.git_blob_sha1 and entry.git_blob_sha1 == blob):
            return entry, True
    return None, True


def check_backbone(name: str, *, adapter_trained: bool) -> WeightsCheck:
    """The backbone a run loaded: a preset, an official checkpoint file or a saved folder."""
    # lazy: vision_guided_io imports torch; provenance of features alone (inspect-ot) must not
    from readcli.backbones.vision_guided.checkpoint_io import VG_PRESETS

    if adapter_trained:
        return WeightsCheck("backbone", name, ADAPTER, "the adapter's fingerprint of these weights matched")
    if name in FRESH_PRESETS:
        return WeightsCheck("backbone", name, UNPUBLISHED, "freshly initialised, no trained weights")
    if name in VG_PRESETS:
        return check_text_model(name)
    card = card_name(name)
    path = preset_weights(load_card(name)) if card is not None else Path(name).expanduser()
    if path.is_dir():
        return WeightsCheck(
            "backbone", str(path), UNPUBLISHED, "a saved backbone folder, not a published file"
        )
    entries = [e for e in _backbone_entries() if card is None or e.preset == card]
    entry, recorded = _match_file(path, entries)
    if entry is not None:
        return WeightsCheck(
            "backbone", str(path), PUBLISHED, f"digest of preset {entry.preset}'s published file"
        )
    if card is not None and not recorded:
        return WeightsCheck("backbone", str(path), UNVERIFIED, f"preset {card}'s card records no digest")
    what = f"differs from preset {card}'s card" if card is not None else "matches no backbone preset's card"
    return WeightsCheck("backbone", str(path), UNPUBLISHED, f"its digest {what}")


def check_text_model(preset: str) -> WeightsCheck:
    """A vision-guided preset's BART/T5 weights in the hub cache, against the card's digest."""
    entry = own_files(preset)[0]
    local = os.environ.get(entry.env_var, "") if entry.env_var else ""  # the copy loading prefers
    if local:
        path: Path | None = Path(local).expanduser() / entry.file_name
        path = path if path is not None and path.is_file() else None
    else:
        path = cached_file(entry.source, entry.file_name, entry.revision)
    where = str(path) if path is not None else (local or entry.source)
    if path is None or not entry.sha256:
        return WeightsCheck("text model", where, UNVERIFIED, f"no published digest to compare ({preset})")
    if file_sha256(path) == entry.sha256:
        return WeightsCheck("text model", where, PUBLISHED, f"sha256 of {entry.source}'s published file")
    return WeightsCheck("text model", where, UNPUBLISHED, f"sha256 differs from {preset}'s card")


# --- CLIP ----------------------------------------------------------------------------------------


def published_clip_digests(model: str) -> set[str]:
    """sha256s published for `model`'s OpenAI weights: the cards' and the one in open_clip's URL."""
    found = set()
    for name in card_names():
        card = read_card(name)
        if (
            card.get("architecture") == "clip"
            and card.get("configuration", {}).get("open_clip_model") == model
        ):
            found |= {e.sha256 for e in own_files(name) if e.sha256}
    try:
        # lazy: open_clip (and its model registry) loads only to read the openai weights' published digest
        import open_clip

        url = (open_clip.get_pretrained_cfg(model, "openai") or {}).get("url", "")
        found |= set(_SHA256_IN_URL.findall(url))
    except Exception as err:  # an open_clip without the model or the registry: the cards still count
        log.debug("open_clip registry lookup for %s failed: %s", model, err)
    return found


def check_clip(model: str, kind: str, label: str, sha256: str, *, adapter_digests: set[str]) -> WeightsCheck:
    """CLIP `model` weights of digest `sha256`: `kind` "openai" (open_clip's registry) or "path";
    `label` names them in the message (the --clip-weights value)."""
    known = published_clip_digests(model)
    if sha256 in known:
        return WeightsCheck("CLIP", label, PUBLISHED, f"sha256 {_short(sha256)} is OpenAI's {model} release")
    if sha256 in adapter_digests:
        return WeightsCheck("CLIP", label, ADAPTER, "the adapter's training features were made with it")
    if kind == "openai":  # open_clip's hub copy of the release: another file, with no published digest
        return WeightsCheck("CLIP", label, PUBLISHED, f"open_clip's openai download of {model}")
    expected = f"OpenAI's {model} is {_short(sorted(known)[0])}" if known else f"no published {model} weights"
    return WeightsCheck("CLIP", label, UNPUBLISHED, f"sha256 {_short(sha256)}; {expected}")


def bundle_clip_digests(extra: dict[str, Any]) -> set[str]:
    """CLIP digests the bundle's training features record (their .json metadata), if still on disk."""
    data = extra.get("data")
    if not isinstance(data, str):
        return set()
    found = set()
    for meta in sorted((Path(data) / "video_features").glob("*/*.json"))[:4]:  # a few files suffice
        try:
            digest = parse_json(meta.read_text(encoding="utf-8"), str(meta)).get("weights_sha256")
        except (OSError, ValueError, AttributeError, InputFileError):
            continue
        if isinstance(digest, str):
            found.add(digest)
    return found


@dataclass(frozen=True)
class ClipUse:
    """The CLIP weights a run read: open_clip `model`, `kind` "openai" or "path", a `label` for messages."""

    model: str
    kind: str
    label: str
    sha256: str

    @classmethod
    def of(cls, spec: EncoderSpec, given: str) -> ClipUse:
        """From a loaded encoder's EncoderSpec and the --clip-weights value of the run."""
        label = "openai" if spec.weights == "openai" else given if given != "openai" else "a local file"
        return cls(spec.model, spec.weights, label, spec.weights_sha256)


def run_provenance(
    *, backbone: str | None, adapter: str | os.PathLike[str] | None, clip: ClipUse | None
) -> Provenance:
    """The checks of one run: `backbone` as loaded (None: no backbone), the adapter folder in use
    (already loaded, so its fingerprint matched), and the CLIP weights read (None: none)."""
    extra: dict[str, Any] = {}
    if adapter is not None:
        # lazy: adapters.bundle imports torch; provenance of features alone (inspect-ot) must not
        from readcli.adapters.bundle import read_bundle_config

        extra = read_bundle_config(adapter).extra
    checks = []
    if backbone is not None:
        checks.append(check_backbone(backbone, adapter_trained=adapter is not None))
    if clip is not None:
        digests = bundle_clip_digests(extra)
        checks.append(check_clip(clip.model, clip.kind, clip.label, clip.sha256, adapter_digests=digests))
    return Provenance(tuple(checks))


def features_provenance(*paths: Path | None) -> Provenance:
    """CLIP checks of feature files from their metadata (`<name>.json` beside each .npz, as extract
    writes it); files without metadata add nothing (published_weights stays null)."""
    checks = []
    seen: set[str] = set()
    for path in paths:
        meta = path.with_suffix(".json") if path is not None else None
        try:
            data = (
                parse_json(meta.read_text(encoding="utf-8"), str(meta))
                if meta is not None and meta.is_file()
                else None
            )
        except (OSError, ValueError, InputFileError):  # unreadable metadata says nothing either way
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("weights_sha256"), str):
            continue
        digest, model = data["weights_sha256"], str(data.get("model", ""))
        if digest not in seen:
            seen.add(digest)
            kind = "openai" if data.get("weights") == "openai" else "path"
            checks.append(
                check_clip(model, kind, f"the weights behind {path}", digest, adapter_digests=set())
            )
    return Provenance(tuple(checks))
