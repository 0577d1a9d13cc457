"""From a preset name, an official checkpoint or a readcli-saved directory to a ready backbone.

- `PRESETS` maps preset names to their cards in `models/` (JSON: architecture, configuration, where
  the weights come from, the features the model expects). Cards hold no weights.
- `load_backbone(path_or_preset)` accepts a preset name, an official `.ckpt`/`.pth` file, or a
  directory written by `save_backbone` (config.json + model.safetensors). It returns the model in
  eval mode; every failure is one `CheckpointError` that says what to do. Vision-guided BART/T5
  presets and directories go to `vision_guided_io.load_vision_guided` (docs/summarization.md).
- `build_backbone(config)` builds a fresh model from a config (tiny models in tests).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from readcli import __version__
from readcli.backbones.checkpoint import (
    check_state_dict,
    load_official_checkpoint,
    load_safetensors,
    safe_torch_load,
)
from readcli.backbones.moment_detr import ARCHITECTURE as MOMENT_DETR
from readcli.backbones.moment_detr import MomentDETR, build_moment_detr, state_layout
from readcli.backbones.moment_detr_config import MomentDETRConfig, read_json_object
from readcli.backbones.umt import ARCHITECTURE as UMT_ARCHITECTURE
from readcli.backbones.umt import UMT, build_umt, umt_state_layout
from readcli.backbones.umt_config import UMTConfig
from readcli.backbones.umt_io import extract_state, load_umt_checkpoint, umt_from_state
from readcli.backbones.vision_guided_io import VG_PRESETS, is_vision_guided, load_vision_guided
from readcli.errors import CheckpointError, InputFileError, InvalidValueError, choices_text
from readcli.fileio import atomic_write_bytes, atomic_write_json, cache_dir

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
PRESETS: dict[str, str] = {
    "moment-detr-clip": "moment-detr-clip.json",
    "clip-vit-b-32": "clip-vit-b-32.json",
    "umt-s": "umt-s.json",
}
SAVED_FORMAT = "readcli-backbone"
SAVED_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
OFFICIAL_SUFFIXES = (".ckpt", ".pth", ".pt", ".tar")

# architecture name -> (config from readcli's JSON dict, builder)
ARCHITECTURES: dict[str, tuple[Callable[[dict[str, Any]], Any], Callable[..., torch.nn.Module]]] = {
    MOMENT_DETR: (MomentDETRConfig.from_dict, build_moment_detr),
    UMT_ARCHITECTURE: (UMTConfig.from_dict, build_umt),
}
# architecture name -> the state-dict layout of a config (keys, shapes, dtypes), for load checks
LAYOUTS: dict[str, Callable[[Any], dict[str, tuple[tuple[int, ...], torch.dtype]]]] = {
    MOMENT_DETR: state_layout,
    UMT_ARCHITECTURE: umt_state_layout,
}


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


def load_card(name: str) -> PresetCard:
    """Read and check the card of preset `name`."""
    if name not in PRESETS:
        raise InvalidValueError(f"unknown backbone preset {name!r}; choices: {choices_text(sorted(PRESETS))}")
    path = MODELS_DIR / PRESETS[name]
    raw = read_json_object(path)
    try:
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
    where = card.source.get("url") or card.source.get("hf_hub") or card.source
    raise CheckpointError(
        f"preset {card.name}: weights not found at {path} ({origin}). Download {card.file_name} from {where} "
        f"and put it at {default}, or set {card.env_var} to its path"
    )


def load_backbone(
    path_or_preset: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> torch.nn.Module:
    """Load a backbone (an AdapterHost) from a preset, an official checkpoint or a readcli directory."""
    name = os.fspath(path_or_preset)
    if is_vision_guided(name):  # bart-base-vg, t5-base-vg, or a BART/T5 directory (vision_guided_io.py)
        return load_vision_guided(name, device=device, dtype=dtype)
    card: PresetCard | None = None
    if name in PRESETS:
        card = load_card(name)
        if card.architecture not in ARCHITECTURES:
            raise InvalidValueError(
                f"preset {name} is a {card.architecture} feature extractor, not a backbone; "
                "backbone presets: "
                f"{choices_text(sorted(p for p in PRESETS if load_card(p).architecture in ARCHITECTURES))}"
            )
        path = resolve_weights(card)
    else:
        path = Path(name).expanduser()
    if path.is_dir():
        model = _load_saved(path)
    elif path.is_file():
        model = _load_official(path, card)
    else:
        raise CheckpointError(
            f"{name!r} is neither a backbone preset ({choices_text(sorted([*PRESETS, *VG_PRESETS]))}) "
            "nor an existing "
            "checkpoint file or saved-backbone directory"
        )
    model = model.to(device=device) if dtype is None else model.to(device=device, dtype=dtype)
    return model.eval()


def build_backbone(
    config: Any, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> Any:
    """A freshly initialised backbone for `config` (e.g. `tiny_moment_detr_config()`, `tiny_umt_config()`)."""
    if isinstance(config, MomentDETRConfig):
        return build_moment_detr(config, device=device, dtype=dtype)
    if isinstance(config, UMTConfig):
        return build_umt(config, device=device, dtype=dtype)
    raise InvalidValueError(
        f"no backbone builds from a {type(config).__name__}; known configs: MomentDETRConfig, UMTConfig"
    )


def save_backbone(model: torch.nn.Module, directory: str | os.PathLike[str]) -> Path:
    """Write a plain backbone as config.json + model.safetensors (JSON config, no pickle)."""
    if not isinstance(model, MomentDETR | UMT):
        raise InvalidValueError(
            f"save_backbone saves readcli backbones (MomentDETR, UMT), not {type(model).__name__}"
        )
    directory = Path(directory)
    state = {key: t.detach().to("cpu").contiguous() for key, t in model.state_dict().items()}
    try:
        check_state_dict(state, LAYOUTS[model.architecture_name()](model.config), source="this model")
    except CheckpointError as err:
        raise CheckpointError(
            "save_backbone writes a plain backbone; remove adapters and prompts first "
            f"(save those as a bundle): {err}"
        ) from None
    atomic_write_bytes(directory / WEIGHTS_FILE, save(state, metadata={"format": SAVED_FORMAT}))
    atomic_write_json(  # written last: a directory with config.json is complete
        directory / CONFIG_FILE,
        {
            "format": SAVED_FORMAT,
            "format_version": SAVED_FORMAT_VERSION,
            "readcli_version": __version__,
            "architecture": model.architecture_name(),
            "config": model.config.to_dict(),
        },
    )
    return directory


def _load_official(path: Path, card: PresetCard | None) -> torch.nn.Module:
    if path.suffix in (".safetensors", ".json"):
        raise CheckpointError(
            f"{path}: a {path.suffix} file is not a backbone; give an official checkpoint "
            f"({', '.join(OFFICIAL_SUFFIXES)}) or a saved-backbone directory "
            f"with {CONFIG_FILE} and {WEIGHTS_FILE}"
        )
    if card is not None and card.architecture == UMT_ARCHITECTURE:
        expected = UMTConfig.from_dict(card.configuration)
        return load_umt_checkpoint(path, expected, expected=expected)
    try:
        checkpoint = load_official_checkpoint(path)
    except CheckpointError:
        # not Moment-DETR's {"model", "opt"} layout: an official UMT file is a bare state dict
        umt_state = extract_state(safe_torch_load(path))
        if umt_state is None:
            raise
        return umt_from_state(umt_state, base=None, expected=None, source=str(path))
    try:
        config = MomentDETRConfig.from_options(checkpoint.options, tef_included=True)
    except InvalidValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    if card is not None:
        _check_card_config(path, card, config)
    check_state_dict(checkpoint.state_dict, state_layout(config), source=str(path))
    model = build_moment_detr(config)
    model.load_state_dict(checkpoint.state_dict)
    log.info("loaded Moment-DETR from %s (epoch %s)", path, checkpoint.epoch)
    return model


def _load_saved(directory: Path) -> torch.nn.Module:
    meta = read_json_object(directory / CONFIG_FILE)
    if meta.get("format") != SAVED_FORMAT or meta.get("format_version") != SAVED_FORMAT_VERSION:
        raise CheckpointError(
            f"{directory / CONFIG_FILE}: format {meta.get('format')!r} "
            f"version {meta.get('format_version')!r}; "
            f"expected {SAVED_FORMAT!r} version {SAVED_FORMAT_VERSION}"
        )
    architecture = meta.get("architecture")
    if architecture not in ARCHITECTURES:
        raise CheckpointError(
            f"{directory / CONFIG_FILE}: architecture {architecture!r}; "
            f"choices: {choices_text(sorted(ARCHITECTURES))}"
        )
    make_config, build = ARCHITECTURES[architecture]
    try:
        config = make_config(meta.get("config") or {})
    except (InvalidValueError, TypeError) as err:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {err}") from None
    state = load_safetensors(directory / WEIGHTS_FILE)
    check_state_dict(state, LAYOUTS[architecture](config), source=str(directory / WEIGHTS_FILE))
    model = build(config)
    model.load_state_dict(state)
    return model


def _check_card_config(path: Path, card: PresetCard, config: MomentDETRConfig) -> None:
    """A file found for a preset must be that preset's model, not another Moment-DETR."""
    expected = MomentDETRConfig.from_dict(card.configuration).to_dict()
    found = config.to_dict()
    differ = [f"{k}={found[k]!r} (card: {expected[k]!r})" for k in expected if found[k] != expected[k]]
    if differ:
        raise CheckpointError(
            f"{path} is not the {card.name} checkpoint: {'; '.join(differ[:4])}. "
            "Load it by its path instead of the preset name"
        )


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
