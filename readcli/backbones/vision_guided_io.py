"""Loading and saving vision-guided BART/T5: presets (hub ids), Hugging Face directories, readcli directories.

- A preset (`bart-base-vg`, `t5-base-vg`; cards in models/) names a hub id. The text model and its
  tokenizer load with `from_pretrained`: from the local Hugging Face cache first, else downloaded.
  Offline (HF_HUB_OFFLINE set, or huggingface.co unreachable) a hub id missing from the cache fails
  at once with an `OfflineError` naming the local-directory option.
- A Hugging Face model directory (config.json with model_type bart or t5, weights, tokenizer files)
  gets a new fusion head.
- A readcli vision-guided directory, written by `save_vision_guided`:
      config.json          {"format": "readcli-backbone", "format_version": 1, "architecture":
                            "vision_guided_bart" | "vision_guided_t5", "config": VisionGuidedConfig}
      fusion.safetensors   the fusion head's tensors
      text_model/          the stock model (`save_pretrained`, safetensors) and its tokenizer files
  No pickles anywhere; config.json is written last, so its presence marks a complete directory.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from readcli import __version__
from readcli.backbones.vision_guided import ARCHITECTURES, VisionGuidedSeq2Seq, _text_classes
from readcli.backbones.vision_guided_config import FAMILIES, VisionGuidedConfig
from readcli.errors import CheckpointError, InputFileError, InvalidValueError, OfflineError, choices_text
from readcli.fileio import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
VG_PRESETS: dict[str, str] = {"bart-base-vg": "bart-base-vg.json", "t5-base-vg": "t5-base-vg.json"}
SAVED_FORMAT = "readcli-backbone"
SAVED_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
FUSION_FILE = "fusion.safetensors"
TEXT_DIR = "text_model"
HUB_HOST = ("huggingface.co", 443)


@dataclass(frozen=True)
class VisionGuidedCard:
    """A preset card: the text model's hub id, the env var that may point to a local copy, the fusion."""

    name: str
    hub_id: str
    env_var: str
    config: VisionGuidedConfig
    raw: dict[str, Any]


def load_vg_card(name: str) -> VisionGuidedCard:
    if name not in VG_PRESETS:
        raise InvalidValueError(
            f"unknown vision-guided preset {name!r}; choices: {choices_text(sorted(VG_PRESETS))}"
        )
    path = MODELS_DIR / VG_PRESETS[name]
    raw = _read_json(path)
    try:
        text = raw["text_model"]
        config = VisionGuidedConfig.from_dict({"family": text["family"], **raw["configuration"]})
        return VisionGuidedCard(raw["name"], text["hub_id"], text["env_var"], config, raw)
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
        meta = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
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
) -> VisionGuidedSeq2Seq:
    """A VG backbone (eval mode, tokenizer attached) from a preset, a HF directory or a readcli directory.

    video_dim: the width of the video features; a new fusion head is built for it. A fusion head that
    came trained with the backbone cannot change width (an error says so).
    """
    text = os.fspath(name)
    if text in VG_PRESETS:
        card = load_vg_card(text)
        override = os.environ.get(card.env_var)
        source = str(Path(override).expanduser()) if override else card.hub_id
        text_model, tokenizer = load_text_model(source, card.config.family, preset=card)
        model = _wrap(text_model, _with_video_dim(card.config, video_dim, text), tokenizer, None)
    else:
        directory = Path(text).expanduser()
        if not directory.is_dir():
            raise CheckpointError(
                f"{text!r} is neither a vision-guided preset ({choices_text(sorted(VG_PRESETS))}) nor a "
                "directory (a Hugging Face BART/T5 model or one written by save_vision_guided)"
            )
        meta = _read_json(directory / CONFIG_FILE)
        if meta.get("format") == SAVED_FORMAT:
            model = _load_saved(directory, meta, video_dim)
        else:
            family = _family_of(meta, directory)
            text_model, tokenizer = load_text_model(str(directory), family)
            model = _wrap(
                text_model, _with_video_dim(VisionGuidedConfig(family), video_dim, text), tokenizer, None
            )
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
    from safetensors.torch import save

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


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def _family_of(meta: dict[str, Any], directory: Path) -> str:
    model_type = meta.get("model_type")
    for family, kind in FAMILIES.items():
        if model_type == kind:
            return family
    raise CheckpointError(
        f"{directory} holds a {model_type!r} model; vision-guided backbones wrap "
        f"{choices_text(FAMILIES.values())} models (or give a directory written by save_vision_guided)"
    )


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


def _offline_reason() -> str | None:
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{variable} is set"
    try:
        with socket.create_connection(HUB_HOST, timeout=3.0):
            return None
    except OSError:
        return f"{HUB_HOST[0]} cannot be reached"


def load_text_model(source: str, family: str, *, preset: VisionGuidedCard | None = None) -> tuple[Any, Any]:
    """(stock text model, tokenizer) by `from_pretrained` from a local directory or a hub id."""
    from transformers import AutoConfig, AutoTokenizer

    model_class: Any = _text_classes()[family]
    local = Path(source).expanduser()
    if local.is_dir():
        family_found = _family_of(_read_json(local / CONFIG_FILE), local)
        if family_found != family:
            raise CheckpointError(f"{local} holds a {family_found} model, but this backbone needs {family}")
        return _from_pretrained(model_class, AutoTokenizer, str(local), local_only=True)
    if preset is not None and os.environ.get(preset.env_var):
        raise CheckpointError(
            f"{preset.env_var}={source}: not a directory; point it to a local copy of {preset.hub_id}"
        )
    try:  # the local cache first: no network needed when the model was downloaded before
        AutoConfig.from_pretrained(source, local_files_only=True)
        cached = True
    except OSError:
        cached = False
    if cached:
        return _from_pretrained(model_class, AutoTokenizer, source, local_only=True)
    reason = _offline_reason()
    if reason is not None:
        alternative = f", or set {preset.env_var}=DIR" if preset is not None else ""
        raise OfflineError(
            f"backbone {preset.name if preset else source} needs {source} from the Hugging Face hub, which "
            f"is not in the local cache and cannot be downloaded ({reason}): download it where there is a "
            f"network (huggingface-cli download {source} --local-dir DIR) and pass "
            f"--backbone DIR{alternative}"
        )
    return _from_pretrained(model_class, AutoTokenizer, source, local_only=False)


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Without transformers' weight-loading progress bar (the CLI renders its own output)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _from_pretrained(
    model_class: Any, tokenizer_class: Any, source: str, *, local_only: bool
) -> tuple[Any, Any]:
    try:
        with _quiet_loading():
            model = model_class.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot load {source} ({' '.join(str(err).split())[:200]})") from None
    try:
        tokenizer = tokenizer_class.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"{source}: no usable tokenizer files next to the model ({' '.join(str(err).split())[:160]})"
        ) from None
    return model, tokenizer


def _load_saved(directory: Path, meta: dict[str, Any], video_dim: int | None) -> VisionGuidedSeq2Seq:
    from safetensors.torch import load_file

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
    wanted = _with_video_dim(config, video_dim, str(directory))
    fusion = None
    if wanted == config:  # a new width means a new head: the saved one does not fit
        try:
            fusion = load_file(str(directory / FUSION_FILE))
        except Exception as err:  # safetensors raises its own error types on bad bytes
            raise CheckpointError(f"{directory / FUSION_FILE}: not readable ({err})") from None
    try:
        return _wrap(text_model, wanted, tokenizer, fusion)
    except RuntimeError as err:  # load_state_dict: missing/unexpected keys or shapes
        raise CheckpointError(f"{directory / FUSION_FILE} does not fit {architecture}: {err}") from None
