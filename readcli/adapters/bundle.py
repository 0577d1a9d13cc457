"""Adapter bundles: `adapter_config.json` + `adapter_model.safetensors` (trainable tensors only).

Saving never disturbs the previous bundle until the new one is whole: the new tensors go to a hidden
pending file beside the old ones, then the config (which records the tensors' digest) is replaced
atomically, which commits the save, then the pending file takes the usual name. A kill at any moment
leaves the old bundle or the new one loadable: before the commit the old config matches the old
tensors; after it, loading finds the tensors the config names in the pending file (docs/reliability.md).
Loading checks, before touching the
model, the architecture, the backbone attributes and the fingerprint of the frozen weights; then it
injects the recorded method and checks every key, shape and dtype (docs/adapters.md, "Bundles").
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from readcli import __version__
from readcli.adapters.fingerprint import fingerprint, frozen_tensors
from readcli.adapters.inject import (
    InjectionReport,
    adapter_parameters,
    architecture_of,
    inject,
    injection_of,
    planned_backbone_parameters,
    resolve_targets,
)
from readcli.adapters.method import MethodConfig
from readcli.adapters.settings import settings_from_dict
from readcli.backbones.contract import AdapterTargets, SequenceContext
from readcli.errors import BundleError, InputFileError, InvalidValueError
from readcli.fileio import atomic_replace, atomic_write_bytes, atomic_write_json
from readcli.records import read_json_file, validate
from readcli.records.schemas_config import BundleRecord

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PENDING_FILE = f".{WEIGHTS_FILE}.pending"  # a save's new tensors until its config commits them
FORMAT = "readcli-adapter-bundle"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class BundleConfig:
    """The parsed `adapter_config.json`."""

    settings: MethodConfig
    task: str
    backbone_name: str
    architecture: str
    fingerprint: str
    weights_digest: str
    weights_size: int
    backbone_extra: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    readcli_version: str = __version__
    parameters: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "readcli_version": self.readcli_version,
            "method": self.settings.to_dict(),
            "task": self.task,
            "backbone": {
                "name": self.backbone_name,
                "architecture": self.architecture,
                "extra": self.backbone_extra,
                "fingerprint": self.fingerprint,
            },
            "extra": self.extra,
            "weights": {"file": WEIGHTS_FILE, "blake2b": self.weights_digest, "bytes": self.weights_size},
            "parameters": self.parameters,
        }


@dataclass(frozen=True)
class LoadedBundle:
    config: BundleConfig
    report: InjectionReport


def bundle_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """What a bundle holds: trainable parameters plus every adapter-owned one, tied tensors once."""
    owned = {id(p) for p in adapter_parameters(model).values()}
    return {n: p for n, p in model.named_parameters() if p.requires_grad or id(p) in owned}


def _blake2b(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def save_bundle(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    backbone_name: str,
    task: str,
    method_settings: MethodConfig | None = None,
    extra_config: Mapping[str, Any] | None = None,
    source: str | os.PathLike[str] | None = None,
) -> BundleConfig:
    """Write the adapter of an injected `model` to `directory`; `extra_config` holds e.g. the feature spec.

    `source`: the checkpoint the frozen weights were loaded from, to cache their fingerprint.
    """
    report = injection_of(model)
    if report is None:
        raise InvalidValueError("save_bundle needs a model prepared by readcli.adapters.inject()")
    if method_settings is not None:
        injected = report.settings.to_dict()  # a knob left None (k) matches the value inject resolved
        given = {k: v for k, v in method_settings.to_dict().items() if v is not None}
        if any(injected.get(k) != v for k, v in given.items()):
            raise InvalidValueError(
                f"method settings {method_settings} differ from the injected ones {report.settings}"
            )
    if not backbone_name or not task:
        raise InvalidValueError(
            f"a bundle needs a backbone name and a task, got {backbone_name!r} and {task!r}"
        )
    extra = dict(extra_config or {})
    try:
        json.dumps(extra)
    except (TypeError, ValueError) as err:
        raise InvalidValueError(f"extra_config must be JSON-serialisable: {err}") from None
    params = bundle_parameters(model)
    tensors = {name: p.detach().to("cpu").clone().contiguous() for name, p in params.items()}
    data = save_safetensors(tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    frozen = frozen_tensors(model, params.values())
    config = BundleConfig(
        settings=report.settings,
        task=task,
        backbone_name=backbone_name,
        architecture=report.architecture,
        fingerprint=fingerprint(frozen, source=source),
        weights_digest=_blake2b(data),
        weights_size=len(data),
        backbone_extra=dict(report.backbone_extra),
        extra=extra,
        parameters={
            "trainable": report.count.trainable,
            "total": report.count.total,
            "tensors": len(tensors),
        },
    )
    target = Path(directory)
    atomic_write_bytes(target / PENDING_FILE, data)  # beside the old tensors, which stay valid
    atomic_write_json(target / CONFIG_FILE, config.to_json())  # the commit: now the new digest counts
    atomic_replace(target / PENDING_FILE, target / WEIGHTS_FILE)
    return config


def _field(data: Mapping[str, Any], key: str, kind: type, where: Path) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BundleError(f"{where}: field {key!r} is missing or not a {kind.__name__}")
    return value


def read_bundle_config(directory: str | os.PathLike[str]) -> BundleConfig:
    """Parse and check `adapter_config.json` (format, version, every field); BundleError otherwise."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise BundleError(f"no adapter bundle at {Path(directory)}: {CONFIG_FILE} not found")
    try:
        data = read_json_file(path)  # bounded nesting, no NaN/Infinity constants
    except InputFileError as err:
        raise BundleError(str(err)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(f'{path} is not a readcli adapter config (expected "format": "{FORMAT}")')
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path} has bundle format version {version!r}; "
            f"this readcli ({__version__}) reads version {FORMAT_VERSION}"
        )
    try:
        validate(BundleRecord, data, str(path))
    except InputFileError as err:
        raise BundleError(str(err)) from None
    backbone = _field(data, "backbone", dict, path)
    weights = _field(data, "weights", dict, path)
    try:
        settings = settings_from_dict(_field(data, "method", dict, path))
    except InvalidValueError as err:
        raise BundleError(f"{path}: bad method settings: {err}") from None
    return BundleConfig(
        settings=settings,
        task=_field(data, "task", str, path),
        backbone_name=_field(backbone, "name", str, path),
        architecture=_field(backbone, "architecture", str, path),
        fingerprint=_field(backbone, "fingerprint", str, path),
        weights_digest=_field(weights, "blake2b", str, path),
        weights_size=_field(weights, "bytes", int, path),
        backbone_extra={str(k): str(v) for k, v in _field(backbone, "extra", dict, path).items()},
        extra=dict(data.get("extra") or {}),
        readcli_version=str(data.get("readcli_version", "unknown")),
        parameters=dict(data.get("parameters") or {}),
    )


def _check_backbone(
    model: nn.Module, targets: AdapterTargets, config: BundleConfig, name: str | None
) -> None:
    """Refuse a bundle made for another backbone, naming what differs."""
    made_for = f"backbone {config.backbone_name!r} ({config.architecture})"
    if name is not None and name != config.backbone_name:
        raise BundleError(f"this bundle was made for {made_for}, not for backbone {name!r}")
    architecture = architecture_of(model)
    if architecture != config.architecture:
        raise BundleError(f"this bundle was made for {made_for}; this model is a {architecture}")
    differ = [
        f"{key}: bundle {config.backbone_extra.get(key)!r}, model {targets.extra.get(key)!r}"
        for key in sorted(set(config.backbone_extra) | set(targets.extra))
        if config.backbone_extra.get(key) != targets.extra.get(key)
    ]
    if differ:
        raise BundleError(
            f"this bundle was made for another {architecture} ({made_for}): {'; '.join(differ)}"
        )


def _listing(names: list[str], limit: int = 5) -> str:
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return f"({len(names)}) {', '.join(names[:limit])}{more}"


def _check_tensors(
    expected: Mapping[str, nn.Parameter], found: Mapping[str, torch.Tensor], where: Path
) -> None:
    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"missing keys {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listing(unexpected)}")
    common = sorted(set(expected) & set(found))
    shapes = [
        f"{n} {tuple(found[n].shape)} vs {tuple(expected[n].shape)}"
        for n in common
        if found[n].shape != expected[n].shape
    ]
    if shapes:
        problems.append(f"shape mismatches (bundle vs model) {_listing(shapes)}")
    dtypes = [
        f"{n} {found[n].dtype} vs {expected[n].dtype}" for n in common if found[n].dtype != expected[n].dtype
    ]
    if dtypes:
        problems.append(f"dtype mismatches (bundle vs model) {_listing(dtypes)}")
    if problems:
        raise BundleError(f"{where} does not fit this backbone: {'; '.join(problems)}")


def _matches(data: bytes, config: BundleConfig) -> bool:
    return len(data) == config.weights_size and _blake2b(data) == config.weights_digest


def _read_weights(directory: Path, config: BundleConfig) -> dict[str, torch.Tensor]:
    path = directory / WEIGHTS_FILE
    data: bytes | None = None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        pass  # a first save stopped after its commit: the tensors are still in the pending file
    except OSError as err:
        raise BundleError(f"cannot read {path} ({err.strerror or err})") from None
    if data is None or not _matches(data, config):
        pending = directory / PENDING_FILE
        # a save stopped between its commit and the final rename: the config names the pending tensors
        staged = pending.read_bytes() if pending.is_file() else b""
        if _matches(staged, config):
            data = staged
    if data is None:
        raise BundleError(f"cannot read {path}: file not found (the bundle is incomplete)")
    if not _matches(data, config):
        raise BundleError(
            f"{path} does not match {CONFIG_FILE} ({len(data)} bytes, expected {config.weights_size}; "
            "digest differs): "
            "the bundle is corrupt, truncated or half-written"
        )
    try:
        return load_safetensors(data)
    except Exception as err:  # safetensors raises its own SafetensorError (and others) on bad bytes
        raise BundleError(f"{path} is not a readable safetensors file ({err})") from None


def load_bundle(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    backbone_name: str | None = None,
    task: str | None = None,
    targets: AdapterTargets | None = None,
    context: SequenceContext | None = None,
    source: str | os.PathLike[str] | None = None,
) -> LoadedBundle:
    """Inject the bundle's method into a fresh `model` and load its tensors; BundleError on any mismatch.

    Backbone, task, fingerprint and file integrity are checked before the model changes; keys, shapes
    and dtypes after the method is injected (a refused model should then be discarded).
    """
    where = Path(directory)
    config = read_bundle_config(where)
    if injection_of(model) is not None:
        raise InvalidValueError("load_bundle needs a fresh backbone; this one already has a method injected")
    if task is not None and task != config.task:
        raise BundleError(f"this bundle was trained for task {config.task!r}, not {task!r}")
    resolved, _ = resolve_targets(model, targets)
    _check_backbone(model, resolved, config, backbone_name)
    planned = planned_backbone_parameters(model, config.settings, resolved)
    found = fingerprint(frozen_tensors(model, planned.values()), source=source)
    if found != config.fingerprint:
        raise BundleError(
            f"the frozen weights of this {config.architecture} differ from those the bundle was trained on "
            f"(backbone {config.backbone_name!r}, fingerprint {config.fingerprint[:24]}..., this model "
            f"{found[:24]}...): load that backbone's checkpoint"
        )
    tensors = _read_weights(where, config)
    report = inject(model, config.settings, targets=targets, context=context)
    expected = bundle_parameters(model)
    _check_tensors(expected, tensors, where / WEIGHTS_FILE)
    with torch.no_grad():
        for name, parameter in expected.items():
            parameter.copy_(tensors[name])
    return LoadedBundle(config, report)
