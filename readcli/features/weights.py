"""Where CLIP weights come from (`openai` or a local file), their digest, and reading them safely.

`openai` resolves through open_clip's pretrained registry, using a cached download when there is one
and the network otherwise; offline it fails at once with an OfflineError that names
`--clip-weights PATH`. A local file is a state dict (.safetensors, or a torch file read with
weights_only=True) or OpenAI's TorchScript release. Digests are sha256 of the file, cached on disk by
path, size and mtime so a re-run does not re-hash hundreds of megabytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from readcli.errors import InputFileError, InvalidValueError, OfflineError, torch_load_reason
from readcli.fileio import atomic_write_json, cache_dir
from readcli.records import read_json_file
from readcli.weights.catalog import local_copy

log = logging.getLogger(__name__)

OPENAI = "openai"
_HUB_HOST = ("huggingface.co", 443)
_PROBE_TIMEOUT_S = 3.0
# Keys of OpenAI's TorchScript archives that are settings, not tensors of the model.
_JIT_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file on disk, what it was asked as, and its sha256."""

    spec: str  # "openai" or the path as given
    path: Path
    sha256: str
    torchscript: bool  # OpenAI's release format, which implies QuickGELU


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(4 * 2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, remembered in the cache by (resolved path, size, mtime_ns)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    store = cache_dir() / "digests.json"
    try:
        cached = read_json_file(store)  # bounded nesting
        if not isinstance(cached, dict):
            cached = {}
    except (OSError, ValueError, InputFileError):
        cached = {}
    if isinstance(cached.get(key), str):
        return str(cached[key])
    value = _sha256_of(path)
    cached[key] = value
    try:
        atomic_write_json(store, cached)
    except (OSError, InputFileError) as err:  # a read-only cache only costs a re-hash next time
        log.debug("cannot update the digest cache %s: %s", store, err)
    return value


def is_torchscript_archive(path: Path) -> bool:
    """True for a TorchScript zip (OpenAI's CLIP release), which torch.load cannot read safely."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def _cached_openai_file(cfg: dict[str, Any]) -> Path | None:
    """A copy of the registry's weights already on disk (the hub cache or open_clip's URL cache)."""
    hub = cfg.get("hf_hub", "")
    if hub:
        # lazy: huggingface_hub loads only when a CLIP weights file is looked up in its cache
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in names:
            found = try_to_load_from_cache(repo_id=repo_id, filename=name)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    url = cfg.get("url", "")
    if url:
        candidate = Path.home() / ".cache" / "clip" / os.path.basename(url)
        if candidate.is_file():
            return candidate

        return local_copy(url)  # where `readcli download clip-vit-b-32` puts it
    return None


def _offline_flagged() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_reachable() -> bool:
    try:
        with socket.create_connection(_HUB_HOST, timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _offline_error(model_name: str, why: str) -> OfflineError:
    fetch = "run `readcli download clip-vit-b-32` with a network, or " if "ViT-B-32" in model_name else ""
    return OfflineError(
        f"--clip-weights openai for {model_name} needs the network to download the weights ({why}); "
        f"{fetch}download them where there is a network and pass --clip-weights PATH (a .safetensors, .pt or "
        ".bin state dict, or OpenAI's ViT-B-32.pt)"
    )


def resolve_openai(model_name: str) -> Path:
    """Path to open_clip's `openai` weights for `model_name`: cached, or downloaded when online."""
    # lazy: open_clip (and its model registry) loads only to resolve its openai weights
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, OPENAI)
    if not cfg:
        offered = [m for m, tag in open_clip.list_pretrained() if tag == OPENAI]
        raise InvalidValueError(
            f"--clip-weights openai is not offered for --clip-model {model_name}; models with openai "
            f"weights: {', '.join(offered)}; or pass --clip-weights PATH"
        )
    cached = _cached_openai_file(cfg)
    if cached is not None:
        return cached
    if _offline_flagged():
        raise _offline_error(model_name, "HF_HUB_OFFLINE is set and no cached copy was found")
    if not _hub_reachable():
        raise _offline_error(model_name, f"{_HUB_HOST[0]} cannot be reached")
    try:
        return Path(open_clip.download_pretrained(cfg))
    except Exception as err:  # open_clip wraps every network failure differently
        raise _offline_error(model_name, f"download failed: {' '.join(str(err).split())[:200]}") from None


def resolve_weights(spec: str, model_name: str) -> ResolvedWeights:
    """Turn `--clip-weights` (openai or a path) into a file with its digest."""
    if spec == OPENAI:
        path = resolve_openai(model_name)
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "not found"
            raise InputFileError(f"--clip-weights {spec}: file {what}; pass 'openai' or a weights file")
    return ResolvedWeights(
        spec=spec, path=path, sha256=file_sha256(path), torchscript=is_torchscript_archive(path)
    )


def read_state_dict(path: Path) -> dict[str, Any]:
    """Tensors of a weights file, without executing pickled code; malformed files raise InputFileError."""
    # lazy: torch loads only to read a checkpoint; readcli download and models use this module without it
    import torch

    try:
        if path.suffix == ".safetensors":
            # lazy: safetensors.torch imports torch: read_state_dict's torch loads only here
            from safetensors.torch import load_file

            loaded: Any = load_file(str(path), device="cpu")
        elif is_torchscript_archive(path):
            with warnings.catch_warnings():  # TorchScript is deprecated, yet it is OpenAI's format
                warnings.simplefilter("ignore", FutureWarning)
                loaded = torch.jit.load(str(path), map_location="cpu").state_dict()
            loaded = {k: v for k, v in loaded.items() if k not in _JIT_EXTRA_KEYS}
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip, safetensors and TorchScript errors have no common base
        raise InputFileError(
            f"--clip-weights {path}: not a readable weights file ({torch_load_reason(err)})"
        ) from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]  # open_clip training checkpoints
    if not isinstance(loaded, dict) or not loaded:
        raise InputFileError(
            f"--clip-weights {path}: expected a state dict of tensors, found {type(loaded).__name__}"
        )
    if all(str(k).startswith("module.") for k in loaded):
        loaded = {str(k)[len("module.") :]: v for k, v in loaded.items()}  # saved from DataParallel
    return loaded
