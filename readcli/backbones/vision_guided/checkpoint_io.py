"""Loading and saving vision-guided BART/T5: presets (hub ids), Hugging Face directories, readcli directories.

- A preset (`bart-base-vg`, `t5-base-vg`; cards in models/) names a hub id. The text model and its
  tokenizer load with `from_pretrained`: from the local Hugging Face cache first, else downloaded.
  Offline (HF_HUB_OFFLINE set, or huggingface.co unreachable) a hub id missing from the cache fails
  at once with an `OfflineError` naming the local-directory option.
- A Hugging Face model directory (config.json with model_type bart or t5, weights, tokenizer files)
  gets a new fusion head.
- An official VG-GPLMs checkpoint (`load_official_checkpoint`: a Lightning .ckpt or a plain state dict)
  on top of a preset's or a directory's text configuration and tokenizer
  (official.py).
- A readcli vision-guided directory, written by `save_vision_guided`:
      config.json          {"format": "readcli-backbone", "format_version": 1, "architecture":
                            "vision_guided_bart" | "vision_guided_t5", "config": VisionGuidedConfig}
      fusion.safetensors   the fusion head's tensors
      text_model/          the stock model (`save_pretrained`, safetensors) and its tokenizer files
  No pickles anywhere; config.json is written last, so its presence marks a complete directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from readcli import __version__
from readcli.backbones.presets import read_card
from readcli.backbones.vision_guided.config import (
    FAMILIES,
    GenerationSettings,
    VisionGuidedCard,
    VisionGuidedConfig,
)
from readcli.backbones.vision_guided.hub import family_of as _family_of
from readcli.backbones.vision_guided.hub import load_text_model
from readcli.backbones.vision_guided.hub import read_json as _read_json
from readcli.backbones.vision_guided.model import ARCHITECTURES, VisionGuidedSeq2Seq, _text_classes
from readcli.backbones.vision_guided.official import read_checkpoint, vision_guided_from_official
from readcli.errors import CheckpointError, InputFileError, InvalidValueError, choices_text
from readcli.fileio import atomic_write_bytes, atomic_write_json
from readcli.records import read_json_file

log = logging.getLogger(__name__)

VG_PRESETS: dict[str, str] = {"bart-base-vg": "bart-base-vg.json", "t5-base-vg": "t5-base-vg.json"}
SAVED_FORMAT = "readcli-backbone"
SAVED_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
FUSION_FILE = "fusion.safetensors"
TEXT_DIR = "text_model"
HUB_HOST = ("huggingface.co", 443)


def load_vg_card(name: str) -> VisionGuidedCard:
    if name not in VG_PRESETS:
        raise InvalidValueError(
            f"unknown vision-guided preset {name!r}; choices: {choices_text(sorted(VG_PRESETS))}"
        )
    raw, path = read_card(VG_PRESETS[name])
    try:
        text = raw["text_model"]
        config = VisionGuidedConfig.from_dict({"family": text["family"], **raw["configuration"]})
        generation = GenerationSettings.from_dict(dict(raw.get("generation") or {}))
        return VisionGuidedCard(raw["name"], text["hub_id"], text["env_var"], config, raw, generation)
    except (KeyError, TypeError) as err:
        raise InputFileError(f"{path}: preset card is missing or mangles field {err}") from None


def is_vision_guided(name: str | os.PathLike[str]) -> bool:
    """True for a VG preset name, a readcli VG directory or a Hugging Face BART/T5 directory."""
    text = os.fspath(name)
    if text in VG_PRESETS:
        return True
    config = Path(text).expanduser() / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        meta = read_json_file(config)  # bounded depth (readcli.records)
    except InputFileError:
        return False
    if not isinstance(meta, dict):
        return False
    return meta.get("architecture") in ARCHITECTURES or meta.get("model_type") in FAMILIES.values()


def load_vision_guided(
    name: str | os.PathLike[str],
    *,
    video_dim: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    fusion: Mapping[str, Any] | None = None,
) -> VisionGuidedSeq2Seq:
    """A VG backbone (eval mode, tokenizer attached) from a preset, a HF directory or a readcli directory.

    video_dim: the width of the video features; a new fusion head is built for it. A fusion head that
    came trained with the backbone cannot change width (an error says so).
    fusion: VisionGuidedConfig fields that replace the preset's (CLI `--fusion-option KEY=VALUE`), for a
    new fusion head; a trained one cannot change.
    """
    text = os.fspath(name)
    if text in VG_PRESETS:
        card = load_vg_card(text)
        text_model, tokenizer = load_text_model(_card_source(card), card.config.family, preset=card)
        config = _with_fusion(_with_video_dim(card.config, video_dim, text), fusion, text)
        model = _wrap(text_model, config, tokenizer, None)
    else:
        directory = Path(text).expanduser()
        if not directory.is_dir():
            raise CheckpointError(
                f"{text!r} is neither a vision-guided preset ({choices_text(sorted(VG_PRESETS))}) nor a "
                "directory (a Hugging Face BART/T5 model or one written by save_vision_guided)"
            )
        meta = _read_json(directory / CONFIG_FILE)
        if meta.get("format") == SAVED_FORMAT:
            model = _load_saved(directory, meta, video_dim, fusion)
        else:
            family = _family_of(meta, directory)
            text_model, tokenizer = load_text_model(str(directory), family)
            config = _with_fusion(_with_video_dim(VisionGuidedConfig(family), video_dim, text), fusion, text)
            model = _wrap(text_model, config, tokenizer, None)
    model = model.to(device=device) if dtype is None else model.to(device=device, dtype=dtype)
    return model.eval()


def load_official_checkpoint(
    path: str | os.PathLike[str],
    *,
    backbone: str | os.PathLike[str] = "bart-base-vg",
    fusion_heads: int | None = None,
    fusion_layer: int | None = None,
    trust: bool = False,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> VisionGuidedSeq2Seq:
    """An official VG-GPLMs checkpoint (Lightning .ckpt or plain state dict) as a VG model (eval mode).

    backbone: the preset or Hugging Face directory that gives the text configuration and tokenizer
    (its weights are replaced by the checkpoint's) and the options the file cannot tell: fusion_heads
    and BART's fusion_layer, unless given here. Official behaviour: no padding mask, fusion trained.
    trust: allow a file that needs arbitrary unpickling (it can run code).
    """

    state = read_checkpoint(path, trust=trust)
    text = os.fspath(backbone)
    if text in VG_PRESETS:
        card = load_vg_card(text)
        text_model, tokenizer = load_text_model(_card_source(card), card.config.family, preset=card)
        base = card.config
    else:
        directory = Path(text).expanduser()
        family = _family_of(_read_json(directory / CONFIG_FILE), directory)
        text_model, tokenizer = load_text_model(str(directory), family)
        base = VisionGuidedConfig(family)
    given = {
        k: v for k, v in (("fusion_heads", fusion_heads), ("fusion_layer", fusion_layer)) if v is not None
    }
    base = _with_fusion(base, given, text)
    model = vision_guided_from_official(state, text_model.config, base, tokenizer)
    model = model.to(device=device) if dtype is None else model.to(device=device, dtype=dtype)
    return model.eval()


def build_vision_guided(
    text_config: Any, config: VisionGuidedConfig, tokenizer: Any = None
) -> VisionGuidedSeq2Seq:
    """A freshly initialised VG model from a stock text config (tiny models in tests and benches)."""
    text_model = _text_classes()[config.family](text_config)
    return VisionGuidedSeq2Seq(text_model, config, tokenizer).eval()


def save_vision_guided(model: VisionGuidedSeq2Seq, directory: str | os.PathLike[str]) -> Path:
    """Write a plain VG backbone (no adapters) as a readcli directory; config.json last."""

    if model.__dict__.get("readcli_injection") is not None:
        raise InvalidValueError(
            "save_vision_guided writes a plain backbone; this model has a method injected "
            "(save that as an adapter bundle)"
        )
    target = Path(directory)
    text_dir = target / TEXT_DIR
    text_dir.mkdir(parents=True, exist_ok=True)
    model.text_model.save_pretrained(text_dir, safe_serialization=True)  # type: ignore[operator]
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(text_dir)
    tensors = {k: t.detach().to("cpu").contiguous() for k, t in model.fusion.state_dict().items()}
    atomic_write_bytes(target / FUSION_FILE, save(tensors, metadata={"format": SAVED_FORMAT}))
    atomic_write_json(
        target / CONFIG_FILE,
        {
            "format": SAVED_FORMAT,
            "format_version": SAVED_FORMAT_VERSION,
            "readcli_version": __version__,
            "architecture": model.architecture_name(),
            "config": model.config.to_dict(),
        },
    )
    return target


# --- internals ---------------------------------------------------------------------------------


def _card_source(card: VisionGuidedCard) -> str:
    override = os.environ.get(card.env_var)
    return str(Path(override).expanduser()) if override else card.hub_id


def _with_fusion(
    config: VisionGuidedConfig, fusion: Mapping[str, Any] | None, where: str
) -> VisionGuidedConfig:
    """`config` with the given fusion options (validated); a trained fusion head cannot change."""
    if not fusion:
        return config
    changed = VisionGuidedConfig.from_dict({**config.to_dict(), **fusion})
    if config.fusion_trained and changed != config:
        raise InvalidValueError(
            f"backbone {where} comes with a trained fusion head; its options cannot change "
            f"({', '.join(sorted(fusion))})"
        )
    return changed


def _with_video_dim(config: VisionGuidedConfig, video_dim: int | None, where: str) -> VisionGuidedConfig:
    if video_dim is None or video_dim == config.video_dim:
        return config
    if config.fusion_trained:
        raise InvalidValueError(
            f"backbone {where} comes with a trained fusion head for {config.video_dim}-d video features; "
            f"it cannot take {video_dim}-d features"
        )
    return replace(config, video_dim=video_dim)


def _wrap(
    text_model: Any, config: VisionGuidedConfig, tokenizer: Any, fusion: dict[str, torch.Tensor] | None
) -> VisionGuidedSeq2Seq:
    model = VisionGuidedSeq2Seq(text_model, config, tokenizer)
    if fusion is not None:
        model.fusion.load_state_dict(fusion)
    return model


def _load_saved(
    directory: Path, meta: dict[str, Any], video_dim: int | None, fusion_options: Mapping[str, Any] | None
) -> VisionGuidedSeq2Seq:

    where = directory / CONFIG_FILE
    if meta.get("format_version") != SAVED_FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: format version {meta.get('format_version')!r}; expected {SAVED_FORMAT_VERSION}"
        )
    architecture = meta.get("architecture")
    if architecture not in ARCHITECTURES:
        raise CheckpointError(
            f"{where}: architecture {architecture!r} is not a vision-guided one; "
            f"choices: {choices_text(sorted(ARCHITECTURES))}"
        )
    try:
        config = VisionGuidedConfig.from_dict(dict(meta.get("config") or {}))
    except (InvalidValueError, TypeError) as err:
        raise CheckpointError(f"{where}: {err}") from None
    if config.family != ARCHITECTURES[architecture]:
        raise CheckpointError(f"{where}: architecture {architecture} but family {config.family!r}")
    text_model, tokenizer = load_text_model(str(directory / TEXT_DIR), config.family)
    wanted = _with_fusion(_with_video_dim(config, video_dim, str(directory)), fusion_options, str(directory))
    fusion = None
    if wanted == config:  # a new width or other options mean a new head: the saved one does not fit
        try:
            fusion = load_file(str(directory / FUSION_FILE))
        except Exception as err:  # safetensors raises its own error types on bad bytes
            raise CheckpointError(f"{directory / FUSION_FILE}: not readable ({err})") from None
    if fusion is not None and "video_proj.weight" in fusion:
        raise CheckpointError(
            f"{directory / FUSION_FILE} holds readcli's pre-VG-GPLMs fusion (video_proj, shared key/value), "
            "which computes another function: retrain it, or load it with a readcli release before the "
            "official fusion"
        )
    try:
        return _wrap(text_model, wanted, tokenizer, fusion)
    except RuntimeError as err:  # load_state_dict: missing/unexpected keys or shapes
        raise CheckpointError(f"{directory / FUSION_FILE} does not fit {architecture}: {err}") from None
