"""A digest of the frozen weights an adapter was trained on, with a cache keyed by the checkpoint file.

The fingerprint covers, for every frozen tensor (name, dtype, shape, bytes); peft's `base_layer`
name component is dropped, so a LoRA-wrapped backbone and the plain one agree. Hashing is blake2b,
one tensor per thread (hashlib releases the GIL). When the caller names the checkpoint the weights
came from (`source`), the digest is cached under `$READCLI_CACHE` (default `~/.cache/readcli`) by that
file's path, size and modification time, so a multi-GB backbone is hashed once (docs/adapters.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import nn

from readcli.errors import InputFileError, InvalidValueError
from readcli.fileio import atomic_write_json, cache_dir
from readcli.records import read_json_file

log = logging.getLogger(__name__)

ALGORITHM = "blake2b-256"
CACHE_FILE = "fingerprints.json"
CACHE_LIMIT = 256  # entries kept, most recently used first
_WRAPPER_COMPONENTS = frozenset({"base_layer"})


def canonical_name(name: str) -> str:
    """A parameter name with injection wrappers removed ('q.base_layer.weight' -> 'q.weight')."""
    return ".".join(part for part in name.split(".") if part not in _WRAPPER_COMPONENTS)


def frozen_tensors(model: nn.Module, excluded: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """State-dict tensors (tied ones once) that are not in `excluded`, by canonical name."""
    skip = {id(t) for t in excluded}
    seen: set[int] = set()
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in skip or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        tensors[canonical_name(name)] = tensor
    return tensors


def _tensor_digest(tensor: torch.Tensor) -> bytes:
    data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy()
    return hashlib.blake2b(data.data, digest_size=32).digest()  # the buffer itself: no copy


def _manifest(tensors: Mapping[str, torch.Tensor]) -> bytes:
    lines = [
        f"{name}\t{str(t.dtype).removeprefix('torch.')}\t{list(t.shape)}"
        for name, t in sorted(tensors.items())
    ]
    return "\n".join(lines).encode("utf-8")


def compute_fingerprint(tensors: Mapping[str, torch.Tensor], *, workers: int | None = None) -> str:
    """blake2b over the manifest (names, dtypes, shapes) and every tensor's bytes, in name order."""
    meta = [name for name, t in tensors.items() if t.device.type == "meta"]
    if meta:
        raise InvalidValueError(
            f"cannot fingerprint weights that were never materialised (meta tensors: {meta[0]}, ...)"
        )
    names = sorted(tensors)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digests = list(pool.map(lambda n: _tensor_digest(tensors[n]), names))
    total = hashlib.blake2b(_manifest(tensors), digest_size=32)
    for digest in digests:
        total.update(digest)
    return f"{ALGORITHM}:{total.hexdigest()}"


def _source_key(source: Path, tensors: Mapping[str, torch.Tensor]) -> str:
    """Identify (checkpoint file or folder as it is now, frozen tensor manifest)."""
    if not source.exists():
        raise InputFileError(f"weights source {source} does not exist")
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    key = hashlib.blake2b(str(source.resolve()).encode("utf-8"), digest_size=32)
    for path in files:
        stat = path.stat()
        relative = path.relative_to(source) if source.is_dir() else ""
        key.update(f"\n{relative}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    key.update(_manifest(tensors))
    return key.hexdigest()


def _read_cache(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = read_json_file(path)  # bounded nesting
        entries = data.get("entries", {}) if isinstance(data, dict) else {}
        return {
            k: v for k, v in entries.items() if isinstance(v, dict) and isinstance(v.get("fingerprint"), str)
        }
    except (OSError, ValueError, AttributeError, InputFileError):
        return {}  # a missing or damaged cache is only a cache


def _write_cache(path: Path, entries: dict[str, dict[str, object]]) -> None:
    newest = sorted(entries.items(), key=lambda kv: float(kv[1].get("used", 0.0)), reverse=True)  # type: ignore[arg-type]
    try:
        atomic_write_json(path, {"version": 1, "entries": dict(newest[:CACHE_LIMIT])})
    except (OSError, InputFileError) as err:
        log.warning("could not write the fingerprint cache %s: %s", path, err)


def fingerprint(tensors: Mapping[str, torch.Tensor], *, source: str | os.PathLike[str] | None = None) -> str:
    """The fingerprint of `tensors`; with `source`, cached by that checkpoint's path, size and mtime.

    `source` must be the file (or folder) the tensors were loaded from, unchanged since: the cache
    trusts it and does not re-read the tensors.
    """
    if source is None:
        return compute_fingerprint(tensors)
    source_path = Path(source)
    key = _source_key(source_path, tensors)
    path = cache_dir() / CACHE_FILE
    entries = _read_cache(path)
    hit = entries.get(key)
    value = str(hit["fingerprint"]) if hit is not None else compute_fingerprint(tensors)
    entries[key] = {"fingerprint": value, "source": str(source_path), "used": time.time()}
    _write_cache(path, entries)
    return value
