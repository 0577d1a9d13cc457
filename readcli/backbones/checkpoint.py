"""Loading backbone weights safely: official pickled checkpoints and readcli's safetensors.

An official Moment-DETR checkpoint is a torch pickle `{"model": state_dict, "opt": argparse.Namespace,
...}`. readcli opens it with `torch.load(weights_only=True)`, allowing `argparse.Namespace` on top of
torch's own allowlist (tensors, plain containers, `torch.device`). Before that, the pickle's globals
are listed without running anything, and a file that needs any other global is refused naming it:
nothing in it is ever called. readcli's own backbones store JSON plus safetensors; no pickle at all.
"""

from __future__ import annotations

import argparse
import logging
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from readcli.errors import CheckpointError, torch_load_reason

log = logging.getLogger(__name__)

ALLOWED_EXTRA_GLOBALS = (argparse.Namespace,)
_ALLOWED_NAMES = {"argparse.Namespace"}


@dataclass(frozen=True)
class OfficialCheckpoint:
    """The parts of an official checkpoint readcli uses."""

    state_dict: dict[str, torch.Tensor]
    options: dict[str, Any]  # vars() of the pickled Namespace
    epoch: int | None


def load_official_checkpoint(path: str | Path) -> OfficialCheckpoint:
    """Open an official `.ckpt`/`.pth` safely and check it holds a state dict and its options."""
    path = Path(path)
    obj = safe_torch_load(path)
    if not isinstance(obj, dict) or "model" not in obj or "opt" not in obj:
        found = sorted(map(str, obj))[:8] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path}: not an official Moment-DETR checkpoint "
            f"(expected a dict with 'model' and 'opt', found {found})"
        )
    state, opt = obj["model"], obj["opt"]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path}: 'model' is not a state dict of named tensors")
    if isinstance(opt, argparse.Namespace):
        options = dict(vars(opt))
    elif isinstance(opt, Mapping):
        options = dict(opt)
    else:
        raise CheckpointError(
            f"{path}: 'opt' is a {type(opt).__name__}, expected argparse.Namespace or a dict"
        )
    epoch = obj.get("epoch")
    return OfficialCheckpoint(dict(state), options, epoch if isinstance(epoch, int) else None)


def safe_torch_load(path: Path) -> Any:
    """torch.load with weights_only=True plus argparse.Namespace; every failure is one CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    # The zip format lets torch list the pickle's globals without running it, for a precise refusal.
    # Other files (legacy pickles, garbage) go straight to the weights-only unpickler, which refuses a
    # disallowed global before calling anything; its message is parsed below.
    if zipfile.is_zipfile(path):
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception as err:  # noqa: BLE001 - any parse failure means "not a torch checkpoint"
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({_one_line(err)})") from None
        _refuse_globals(path, unsafe)
    try:
        with torch.serialization.safe_globals(list(ALLOWED_EXTRA_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - the weights-only unpickler's errors vary by corruption
        text = " ".join(str(err).split())
        _refuse_globals(path, re.findall(r"GLOBAL ([\w.]+)", text))
        raise CheckpointError(
            f"{path}: not a torch checkpoint readcli can load ({torch_load_reason(err)})"
        ) from None


def _refuse_globals(path: Path, names: list[str]) -> None:
    refused = sorted(set(names) - _ALLOWED_NAMES)
    if refused:
        raise CheckpointError(
            f"{path}: refused to unpickle: it needs {', '.join(refused[:5])}, and readcli loads only "
            "tensors, plain containers and argparse.Namespace from a checkpoint"
        )


def load_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file on the CPU; one CheckpointError if it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({_one_line(err)})") from None


def state_layout_of(model: torch.nn.Module) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Every state-dict key of `model` with its shape and dtype: what `check_state_dict` expects.

    Build the model on the meta device to get a layout without allocating weights.
    """
    return {key: (tuple(t.shape), t.dtype) for key, t in model.state_dict().items()}


def check_state_dict(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
    *,
    source: str,
) -> None:
    """Refuse a state dict whose keys or shapes differ from `expected`, naming the first few of each."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [
        f"{key} {tuple(state[key].shape)} (expected {expected[key][0]})"
        for key in sorted(set(state) & set(expected))
        if tuple(state[key].shape) != expected[key][0]
    ]
    wrong_kind = [
        f"{key} {state[key].dtype} (expected {expected[key][1]})"
        for key in sorted(set(state) & set(expected))
        if state[key].dtype.is_floating_point != expected[key][1].is_floating_point
    ]
    problems = []
    for label, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("mis-shaped", misshaped),
        ("wrong dtype", wrong_kind),
    ):
        if items:
            shown = "; ".join(items[:3]) + (" ..." if len(items) > 3 else "")
            problems.append(f"{len(items)} {label} key(s): {shown}")
    if problems:
        raise CheckpointError(f"{source} does not match the configured architecture: " + " | ".join(problems))


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."
