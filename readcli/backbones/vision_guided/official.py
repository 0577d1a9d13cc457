"""Official VG-GPLMs checkpoints (HLTCHKUST/VG-GPLMs) as readcli vision-guided models.

A checkpoint is a Lightning `.ckpt` (the official wrappers keep the model as `self.model`, so every key
carries a `model.` prefix, and save no hyperparameters) or a plain state dict (`.pt`/`.bin` of the
official model class, or `.safetensors`). The text keys are the stock BART/T5 ones; the fusion keys sit
on the encoder (`model.encoder.` for BART, `encoder.` for T5) under the official names, renamed here:

    _linear_1 -> video_key        fg -> gate          final_layer_norm (BART) / custom_layer_norm (T5) -> norm
    _linear_2 -> output (type 0) or video_value (type 5)      _linear_3 -> text_query (type 5)
    _multi_head_attn -> attention                 img_transformer.encoder.layers -> image_transformer.layers
    img_transformer.pos_encoder.pe -> image_transformer.position_table (the file's values are used)

cross_attn_type, the forget gate, the image transformer and the video width are read from the tensors;
the head count and BART's fusion layer cannot be, so they come from the preset or the caller and are
checked against the shapes. The model gets the official behaviour: no padding mask, fusion trained.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from readcli.backbones.vision_guided.config import (
    IMAGE_TRANSFORMER_LAYERS,
    OFFICIAL_FUSION_HEADS,
    VisionGuidedConfig,
)
from readcli.backbones.vision_guided.model import VisionGuidedSeq2Seq, _text_classes
from readcli.errors import CheckpointError, InvalidValueError

ENCODER_PREFIX = {"bart": "model.encoder.", "t5": "encoder."}
NORM_NAME = {"bart": "final_layer_norm", "t5": "custom_layer_norm"}
log = logging.getLogger(__name__)

LIGHTNING_PREFIX = "model."
FUSION_PARTS = (
    "_linear_1",
    "_linear_2",
    "_linear_3",
    "_linear_4",
    "_multi_head_attn",
    "fg",
    "img_transformer",
)
POSITION_TABLE = "img_transformer.pos_encoder.pe"
# a key every official model of the family has, to tell a Lightning prefix from the model's own `model.`
MARKER = {"bart": "model.shared.weight", "t5": "shared.weight"}


def read_checkpoint(path: str | os.PathLike[str], *, trust: bool = False) -> dict[str, torch.Tensor]:
    """The state dict in `path` (Lightning .ckpt, plain state dict, or .safetensors), loaded safely.

    A file that needs arbitrary unpickling (objects besides tensors and plain containers) is refused
    unless `trust` is set (the CLI's --trust-checkpoint): unpickling can run code.
    """
    where = Path(path)
    if not where.is_file():
        raise CheckpointError(f"official checkpoint {where}: file not found")
    if where.suffix == ".safetensors":
        try:
            return dict(load_file(str(where)))
        except Exception as err:  # safetensors raises its own error types on bad bytes
            raise CheckpointError(f"{where}: not a readable safetensors file ({err})") from None
    try:
        data = torch.load(where, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as err:
        message = str(err)
        found = re.search(r"GLOBAL ([\w.]+)", message)
        if found is None:  # weights-only refused something other than a class or function: not a pickle
            detail = re.search(r"WeightsUnpickler error: (.+)", " ".join(message.split()))
            reason = detail.group(1).split(" Check ")[0][:80] if detail else message.splitlines()[0][:80]
            raise CheckpointError(f"{where}: not a readable PyTorch checkpoint ({reason})") from None
        what = f" ({found.group(1)})"
        raise CheckpointError(
            f"{where} needs arbitrary unpickling{what}, which can run code: pass --trust-checkpoint "
            "(trust_checkpoint=True) only if you trust the file"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        message = " ".join(str(err).split())[:160]
        raise CheckpointError(f"{where}: not a readable PyTorch checkpoint ({message})") from None
    return _state_dict_of(data, where)


def _state_dict_of(data: Any, where: Path) -> dict[str, torch.Tensor]:
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{where}: neither a Lightning checkpoint (with 'state_dict') nor a state dict")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{where}: the state dict holds non-tensor entries ({bad[0]!r}, ...)")
    return state


def strip_lightning_prefix(state: dict[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    """The official model's own keys: Lightning's `model.` prefix removed when the file has it."""
    if MARKER[family] in state:
        return dict(state)
    prefixed = LIGHTNING_PREFIX + MARKER[family]
    if prefixed in state and all(k.startswith(LIGHTNING_PREFIX) for k in state):
        return {k[len(LIGHTNING_PREFIX) :]: v for k, v in state.items()}
    raise CheckpointError(
        f"not an official VG-{family.upper()} checkpoint: no {MARKER[family]!r} key (nor {prefixed!r})"
    )


def split_fusion(
    state: dict[str, torch.Tensor], family: str
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(text model keys, fusion keys under their official names without the encoder prefix)."""
    prefix, parts = ENCODER_PREFIX[family], (*FUSION_PARTS, NORM_NAME[family])
    text: dict[str, torch.Tensor] = {}
    fusion: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        rest = key[len(prefix) :] if key.startswith(prefix) else None
        if rest is not None and rest.split(".", 1)[0] in parts:
            fusion[rest] = tensor
        else:
            text[key] = tensor
    if "_linear_1.weight" not in fusion:
        raise CheckpointError(f"no fusion in this checkpoint: {prefix}_linear_1.weight is missing")
    return text, fusion


def read_options(fusion: dict[str, torch.Tensor], family: str) -> dict[str, Any]:
    """The options the tensors tell: cross_attn_type, use_forget_gate, use_img_trans, video_dim."""
    d_model, video_dim = fusion["_linear_1.weight"].shape
    if "_linear_4.weight" in fusion or (
        "_linear_3.weight" in fusion and "_multi_head_attn.in_proj_weight" not in fusion
    ):
        raise CheckpointError("this checkpoint uses cross_attn_type 3 or 4; readcli implements 0 and 5")
    if "_multi_head_attn.in_proj_weight" in fusion:
        kind = 5
    elif "_linear_2.weight" in fusion and fusion["_linear_2.weight"].shape[1] == d_model + video_dim:
        kind = 0
    else:
        raise CheckpointError("this checkpoint uses cross_attn_type 1 or 2; readcli implements 0 and 5")
    if f"{NORM_NAME[family]}.weight" not in fusion:
        raise CheckpointError(
            f"the fusion's post-norm {ENCODER_PREFIX[family]}{NORM_NAME[family]} is missing"
        )
    layers = {k.split(".")[3] for k in fusion if k.startswith("img_transformer.encoder.layers.")}
    if layers and len(layers) != IMAGE_TRANSFORMER_LAYERS:
        raise CheckpointError(
            f"the image transformer has {len(layers)} layers; the official one has {IMAGE_TRANSFORMER_LAYERS}"
        )
    return {
        "cross_attn_type": kind,
        "use_forget_gate": "fg.weight" in fusion,
        "use_img_trans": bool(layers),
        "video_dim": int(video_dim),
    }


def official_config(
    fusion: dict[str, torch.Tensor], base: VisionGuidedConfig, encoder_layers: int, d_model: int
) -> VisionGuidedConfig:
    """`base` (preset or caller) with what the tensors tell, in official behaviour; checked against shapes."""
    told = read_options(fusion, base.family)
    if fusion["_linear_1.weight"].shape[0] != d_model:
        raise CheckpointError(
            f"the fusion's width {fusion['_linear_1.weight'].shape[0]} differs from "
            f"the text model's {d_model}"
        )
    config = replace(
        base, **told, post_norm=True, mask_padding=False, zero_init_output=False, fusion_trained=True
    )
    heads = config.fusion_heads
    if config.cross_attn_type == 5 and heads is None:
        log.warning(
            "the checkpoint cannot tell its fusion head count: using the official default "
            "(-n_attn_heads %d); pass --fusion-heads if it was trained with another",
            OFFICIAL_FUSION_HEADS,
        )
    if config.cross_attn_type == 5 and heads is not None and d_model % heads:
        raise CheckpointError(
            f"--fusion-heads {heads} does not divide the fusion's width {d_model} "
            f"({ENCODER_PREFIX[base.family]}_multi_head_attn.in_proj_weight "
            f"{tuple(fusion['_multi_head_attn.in_proj_weight'].shape)})"
        )
    layer = config.fusion_layer
    if not -encoder_layers <= layer < encoder_layers:
        raise CheckpointError(
            f"--fusion-layer {layer} is out of range: the checkpoint's encoder has {encoder_layers} layers"
        )
    return config


def rename_fusion(fusion: dict[str, torch.Tensor], config: VisionGuidedConfig) -> dict[str, torch.Tensor]:
    """Official fusion keys -> readcli's `VisionTextFusion` keys (the position table included)."""
    names = {"_linear_1": "video_key", "fg": "gate", NORM_NAME[config.family]: "norm",
             "_multi_head_attn": "attention", "_linear_3": "text_query",
             "_linear_2": "output" if config.cross_attn_type == 0 else "video_value"}  # fmt: skip
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in fusion.items():
        if key == POSITION_TABLE:
            renamed["image_transformer.position_table"] = tensor.reshape(tensor.shape[0], -1)  # (5000, D)
        elif key.startswith("img_transformer.encoder.layers."):
            renamed["image_transformer.layers." + key.split(".", 3)[3]] = tensor
        else:
            head, _, rest = key.partition(".")
            renamed[f"{names.get(head, head)}.{rest}"] = tensor
    return renamed


def _encoder_layer_count(text: dict[str, torch.Tensor], family: str) -> int:
    pattern = re.compile(
        r"model\.encoder\.layers\.(\d+)\." if family == "bart" else r"encoder\.block\.(\d+)\."
    )
    found = {int(m.group(1)) for k in text if (m := pattern.match(k))}
    if not found:
        raise CheckpointError(f"no encoder layers in this checkpoint (keys like {pattern.pattern})")
    return max(found) + 1


def vision_guided_from_official(
    state: dict[str, torch.Tensor], text_config: Any, base: VisionGuidedConfig, tokenizer: Any = None
) -> VisionGuidedSeq2Seq:
    """A VG model (eval mode) holding an official state dict (with or without Lightning's prefix).

    `base` gives the family and what the file cannot tell (fusion_heads, BART's fusion_layer).
    """
    family = base.family
    text, fusion = split_fusion(strip_lightning_prefix(state, family), family)
    config = official_config(fusion, base, _encoder_layer_count(text, family), int(text_config.d_model))
    text_model = _text_classes()[family](text_config)
    missing, unexpected = text_model.load_state_dict(text, strict=False)
    tied = {"lm_head.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight",
            "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"}  # fmt: skip
    missing = [k for k in missing if k not in tied]  # tied to the shared embedding, which is loaded
    unexpected = [k for k in unexpected if not k.endswith("EncDecAttention.relative_attention_bias.weight")]
    if missing or unexpected:
        raise CheckpointError(
            f"the checkpoint's text weights do not fit {type(text_model).__name__}: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    try:
        model = VisionGuidedSeq2Seq(text_model, config, tokenizer)
        fused = rename_fusion(fusion, config)
        table = fused.pop("image_transformer.position_table", None)
        model.fusion.load_state_dict(fused, strict=True)
    except (RuntimeError, InvalidValueError) as err:
        raise CheckpointError(
            f"the checkpoint's fusion does not fit: {' '.join(str(err).split())[:300]}"
        ) from None
    if table is not None and model.fusion.image_transformer is not None:
        with (
            torch.no_grad()
        ):  # official values (they may differ from this platform's sin/cos in the last bit)
            model.fusion.image_transformer.position_table.copy_(table)
    return model.eval()


def official_state_dict(model: VisionGuidedSeq2Seq, *, lightning: bool = False) -> dict[str, torch.Tensor]:
    """`model`'s weights under the official key names (the inverse of loading); `lightning`: with `model.`.

    The position table is written as the official `pe` buffer, (rows, 1, D).
    """
    config = model.config
    names = {"video_key": "_linear_1", "gate": "fg", "norm": NORM_NAME[config.family],
             "attention": "_multi_head_attn", "text_query": "_linear_3", "output": "_linear_2",
             "video_value": "_linear_2"}  # fmt: skip
    prefix = ENCODER_PREFIX[config.family]
    state = {k: v.detach().clone() for k, v in model.text_model.state_dict().items()}
    for key, tensor in model.fusion.state_dict().items():
        if key.startswith("image_transformer.layers."):
            official = "img_transformer.encoder.layers." + key.split(".", 2)[2]
        else:
            head, _, rest = key.partition(".")
            official = f"{names[head]}.{rest}"
        state[prefix + official] = tensor.detach().clone()
    transformer = model.fusion.image_transformer
    if transformer is not None:
        state[prefix + POSITION_TABLE] = transformer.position_table.detach().clone()[:, None, :]
    return {LIGHTNING_PREFIX + k: v for k, v in state.items()} if lightning else state
