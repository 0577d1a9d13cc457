"""The text model of a vision-guided backbone from the Hugging Face hub or a local directory (offline-aware).

A hub id is looked up in the local cache first; otherwise, offline (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE
set, or huggingface.co unreachable within 3 s) it fails at once with an `OfflineError` naming the
local-directory option (docs/summarization.md, "Loading and saving").
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from readcli.backbones.vision_guided.config import FAMILIES, VisionGuidedCard
from readcli.backbones.vision_guided.model import _text_classes
from readcli.errors import CheckpointError, InputFileError, OfflineError, choices_text
from readcli.records import read_json_file

CONFIG_FILE = "config.json"
HUB_HOST = ("huggingface.co", 443)


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    try:
        data = read_json_file(path)  # bounded depth, no NaN constants (readcli.records)
    except InputFileError as err:
        raise CheckpointError(str(err)) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def family_of(meta: dict[str, Any], directory: Path) -> str:
    model_type = meta.get("model_type")
    for family, kind in FAMILIES.items():
        if model_type == kind:
            return family
    raise CheckpointError(
        f"{directory} holds a {model_type!r} model; vision-guided backbones wrap "
        f"{choices_text(FAMILIES.values())} models (or give a directory written by save_vision_guided)"
    )


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
    # lazy: transformers takes seconds to import and only the vision-guided models need it
    from transformers import AutoConfig, AutoTokenizer

    model_class: Any = _text_classes()[family]
    local = Path(source).expanduser()
    if local.is_dir():
        family_found = family_of(read_json(local / CONFIG_FILE), local)
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
            f"network ({f'readcli download {preset.name}; or ' if preset else ''}hf download {source} "
            f"--local-dir DIR and pass --backbone DIR{alternative})"
        )
    return _from_pretrained(model_class, AutoTokenizer, source, local_only=False)


@contextmanager
def no_progress_bar() -> Iterator[None]:
    """Without transformers' progress bars (loading, writing shards): readcli renders its own output."""
    # lazy: transformers takes seconds to import and only the vision-guided models need it
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
        with no_progress_bar():
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
