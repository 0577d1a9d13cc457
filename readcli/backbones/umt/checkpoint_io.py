"""Loading an official UMT checkpoint (nncore's `torch.save` of the model's state dict) safely.

The file is opened with `safe_torch_load` (weights only, nothing called). The state dict is taken
from a `state_dict` or `model` entry, or the file itself; a `module.` prefix (DataParallel) is
dropped. The configuration is read off the tensor shapes (widths, layer counts, audio, query
generator, boundary head); the number of heads and the dropouts are not in the weights and come
from the preset card (or UMT-S's defaults). The keys and shapes are then checked against the layout
readcli builds, and any difference is named. See docs/umt.md for what could and could not be checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from readcli.backbones.checkpoint import check_state_dict, safe_torch_load
from readcli.backbones.umt.config import UMTConfig
from readcli.backbones.umt.model import UMT, build_umt, umt_state_layout
from readcli.errors import CheckpointError, InvalidValueError

MARKER = "video_enc.mapping.linear.weight"  # present in every UMT state dict


def extract_state(obj: Any) -> dict[str, torch.Tensor] | None:
    """The UMT state dict inside a loaded checkpoint object, or None if it holds none."""
    for candidate in (obj.get("state_dict"), obj.get("model"), obj) if isinstance(obj, Mapping) else ():
        if isinstance(candidate, Mapping) and all(isinstance(v, torch.Tensor) for v in candidate.values()):
            state = {re.sub(r"^module\.", "", str(k)): v for k, v in candidate.items()}
            if MARKER in state:
                return state
    return None


def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for key in state if (m := pattern.match(key))}
    return max(found) + 1 if found else 0


def _width(state: Mapping[str, torch.Tensor], key: str) -> int:
    """The input width of an optional input linear (0 when the stage is absent)."""
    return int(state[key].shape[1]) if key in state else 0


def config_from_state(state: Mapping[str, torch.Tensor], base: UMTConfig | None = None) -> UMTConfig:
    """The UMTConfig whose layout `state` has; heads and dropouts from `base` (default UMT-S)."""
    base = base or UMTConfig()
    hidden, video = state[MARKER].shape
    try:
        values: dict[str, Any] = dict(
            hidden_dim=int(hidden),
            v_feat_dim=int(video),
            a_feat_dim=_width(state, "audio_enc.mapping.linear.weight"),
            t_feat_dim=_width(state, "query_gen.mapping.linear.weight"),
            ffn_ratio=int(state["video_enc.encoder.ffn.mapping.0.weight"].shape[0]) // int(hidden),
            max_len=int(state["video_enc.pos_enc.pe"].shape[1]),
            dec_layers=_count(state, "query_dec.decoder."),
            boundary_head="pred_head.1.center_pred.linear.weight" in state,
        )  # fmt: skip
    except KeyError as err:
        raise CheckpointError(f"not a UMT state dict: it lacks {err}") from None
    if values["a_feat_dim"]:
        values["cross_layers"] = _count(state, "cross_enc.encoder.encoder.")
        values["bottleneck_tokens"] = int(state["cross_enc.encoder.token"].shape[0])
    try:
        return replace(base, **values)
    except InvalidValueError as err:
        raise CheckpointError(f"UMT weights describe an invalid model: {err}") from None


def load_umt_checkpoint(
    path: Path, base: UMTConfig | None = None, *, expected: Sequence[UMTConfig] = ()
) -> UMT:
    """An official UMT checkpoint as a readcli UMT; one of `expected` (a preset's configs) must match it."""
    state = extract_state(safe_torch_load(path))
    if state is None:
        raise CheckpointError(
            f"{path}: no UMT state dict found (expected a 'state_dict' or 'model' entry with "
            f"'{MARKER}', or such a dict itself)"
        )
    return umt_from_state(state, base=base, expected=expected, source=str(path))


def umt_from_state(
    state: dict[str, torch.Tensor], *, base: UMTConfig | None, expected: Sequence[UMTConfig], source: str
) -> UMT:
    """A UMT holding `state`; with `expected` (a preset's accepted configs) its layout must be one of them."""
    config = config_from_state(state, base)
    if expected and config not in expected:
        found = config.to_dict()
        differences = [
            [f"{k}={found[k]!r} (card: {v!r})" for k, v in wanted.to_dict().items() if found[k] != v]
            for wanted in expected
        ]
        closest = min(differences, key=len)
        raise CheckpointError(
            f"{source} is not the preset's UMT: {'; '.join(closest[:4])}. Load it by its path instead"
        )
    check_state_dict(state, umt_state_layout(config), source=source)
    model = build_umt(config)
    model.load_state_dict(state)
    return model
