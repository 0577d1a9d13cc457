"""From a preset name, an official checkpoint or a readcli-saved directory to a ready backbone.

- `PRESETS` maps preset names to their cards in `models/` (JSON: architecture, configuration, where
  the weights come from, the features the model expects). Cards hold no weights. `PRESET_ALIASES`
  names other spellings of a preset (`umt` = `umt-s`); `FRESH_PRESETS` names presets whose model is
  the card's configuration freshly initialised with a fixed seed, no weights file needed
  (`umt-s-scratch`: the official UMT protocol trains one model per domain from scratch).
- `load_backbone(path_or_preset)` accepts a preset name, an official `.ckpt`/`.pth` file, or a
  directory written by `save_backbone` (config.json + model.safetensors). It returns the model in
  eval mode; every failure is one `CheckpointError` that says what to do. Vision-guided BART/T5
  presets and directories go to `vision_guided_io.load_vision_guided` (docs/summarization.md).
- `build_backbone(config)` builds a fresh model from a config (tiny models in tests).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace
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
from readcli.backbones.moment_detr.config import MomentDETRConfig, read_json_object
from readcli.backbones.moment_detr.model import ARCHITECTURE as MOMENT_DETR
from readcli.backbones.moment_detr.model import MomentDETR, build_moment_detr, state_layout
from readcli.backbones.presets import (
    FRESH_PRESETS,
    FRESH_SEED,
    MODELS_DIR,
    PRESET_ALIASES,
    PRESETS,
    PresetCard,
    backbone_preset_names,
    card_name,
    load_card,
    preset_names,
    resolve_weights,
    source_text,
)
from readcli.backbones.umt.checkpoint_io import extract_state, load_umt_checkpoint, umt_from_state
from readcli.backbones.umt.config import UMTConfig
from readcli.backbones.umt.model import ARCHITECTURE as UMT_ARCHITECTURE
from readcli.backbones.umt.model import UMT, build_umt, umt_state_layout
from readcli.backbones.vision_guided.checkpoint_io import VG_PRESETS, is_vision_guided, load_vision_guided
from readcli.errors import CheckpointError, InputFileError, InvalidValueError, choices_text
from readcli.fileio import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

__all__ = [  # the preset names are re-exported: callers import them from the registry
    "FRESH_PRESETS", "FRESH_SEED", "MODELS_DIR", "PRESET_ALIASES", "PRESETS", "PresetCard", "card_name",
    "load_card", "preset_names", "resolve_weights", "source_text", "ARCHITECTURES", "LAYOUTS",
    "load_backbone", "build_backbone", "save_backbone",
]  # fmt: skip

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


def load_backbone(
    path_or_preset: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> torch.nn.Module:
    """Load a backbone (an AdapterHost) from a preset, an official checkpoint or a readcli directory."""
    name = os.fspath(path_or_preset)
    if is_vision_guided(name):  # bart-base-vg, t5-base-vg, or a BART/T5 directory
        return load_vision_guided(name, device=device, dtype=dtype)
    card: PresetCard | None = None
    if card_name(name) is not None:
        card = load_card(name)
        if card.architecture not in ARCHITECTURES:
            backbones = [p for p in preset_names() if load_card(p).architecture in ARCHITECTURES]
            raise InvalidValueError(
                f"preset {name} is a {card.architecture} feature extractor, not a backbone; "
                f"backbone presets: {choices_text(backbones)}"
            )
    if card is not None and name in FRESH_PRESETS:
        model = _fresh(card)
    else:
        path = resolve_weights(card) if card is not None else Path(name).expanduser()
        if path.is_dir():
            model = _load_saved(path)
        elif path.is_file():
            model = _load_official(path, card)
        else:
            presets = choices_text(sorted([*backbone_preset_names(), *VG_PRESETS]))
            raise CheckpointError(
                f"{name!r} is neither a backbone preset ({presets}) "
                "nor an existing checkpoint file or saved-backbone directory"
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


def _fresh(card: PresetCard) -> torch.nn.Module:
    """The card's model freshly initialised, the same on every call (fixed seed, CPU generator)."""
    make_config, build = ARCHITECTURES[card.architecture]
    with torch.random.fork_rng(devices=[]):  # leaves the caller's random state untouched
        torch.manual_seed(FRESH_SEED)
        model = build(make_config(card.configuration))
    log.info(
        "built a freshly initialised %s from preset card %s (seed %d)",
        card.architecture,
        card.name,
        FRESH_SEED,
    )
    return model


def _umt_configs(card: PresetCard) -> list[UMTConfig]:
    """The card's UMT configuration, then the variants official files may have (`configuration_variants`)."""
    expected = UMTConfig.from_dict(card.configuration)
    variants = card.raw.get("configuration_variants", [])
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        raise InputFileError(f"preset card {card.name}: configuration_variants must be a list of objects")
    try:
        return [expected, *(replace(expected, **v) for v in variants)]
    except (TypeError, InvalidValueError) as err:
        raise InputFileError(f"preset card {card.name}: configuration_variants: {err}") from None


def _load_official(path: Path, card: PresetCard | None) -> torch.nn.Module:
    if path.suffix in (".safetensors", ".json"):
        raise CheckpointError(
            f"{path}: a {path.suffix} file is not a backbone; give an official checkpoint "
            f"({', '.join(OFFICIAL_SUFFIXES)}) or a saved-backbone directory "
            f"with {CONFIG_FILE} and {WEIGHTS_FILE}"
        )
    if card is not None and card.architecture == UMT_ARCHITECTURE:
        accepted = _umt_configs(card)
        return load_umt_checkpoint(path, accepted[0], expected=accepted)
    try:
        checkpoint = load_official_checkpoint(path)
    except CheckpointError:
        # not Moment-DETR's {"model", "opt"} layout: an official UMT file is a bare state dict
        umt_state = extract_state(safe_torch_load(path))
        if umt_state is None:
            raise
        return umt_from_state(umt_state, base=None, expected=(), source=str(path))
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
