"""Which features a backbone takes at inference: the bundle's feature spec, or the preset card's.

A bundle made by `finetune` records the `VideoFeatureSpec` its adapter was trained with; without a
bundle the backbone's preset card says what the released model expects (CLIP 512 + TEF, L2, 2 s).
A checkpoint given by path, with no card of its own, is taken to expect the features of the
`moment-detr-clip` card; the widths are checked against the model either way. docs/ground.md.
"""

from __future__ import annotations

from typing import Any

from readcli.backbones.presets import card_name
from readcli.backbones.registry import PresetCard, load_card
from readcli.data.feature_spec import TEF_DIM, StreamSpec, VideoFeatureSpec
from readcli.errors import BundleError, InputFileError, InvalidValueError

DEFAULT_CARD = "moment-detr-clip"
TEF_STREAM = "tef"


def _card_error(card: PresetCard, what: str) -> InputFileError:
    return InputFileError(f"preset card {card.name}: its 'features' section {what}")


def spec_from_card(card: PresetCard) -> VideoFeatureSpec:
    """The card's `features` section as a VideoFeatureSpec (order entries are 'name:width')."""
    features = card.raw.get("features")
    if not isinstance(features, dict) or not isinstance(features.get("video"), dict):
        raise _card_error(card, "is missing or has no 'video' entry")
    video, text = features["video"], features.get("text") or {}
    streams: list[StreamSpec] = []
    tef = False
    for entry in video.get("order") or []:
        name, _, width = str(entry).partition(":")
        if not width.isdigit():
            raise _card_error(card, f"lists video stream {entry!r}; expected 'name:width'")
        if name == TEF_STREAM:
            tef = int(width) == TEF_DIM
            continue
        l2 = str(video.get("normalize", "")).upper().startswith("L2")
        streams.append(StreamSpec(name=name, dim=int(width), l2_normalize=l2))
    try:
        return VideoFeatureSpec(
            streams=tuple(streams),
            text_dim=int(text.get("dim", 0)),
            tef=tef,
            clip_len=float(features.get("clip_length_seconds", 2.0)),
            max_v_l=features.get("max_v_l"),
            max_q_l=features.get("max_q_l"),
            normalize_text=str(text.get("normalize", "")).upper().startswith("L2"),
        )
    except (InvalidValueError, TypeError, ValueError) as err:
        raise _card_error(card, f"does not make a feature spec: {err}") from None


def spec_from_bundle(extra: dict[str, Any], bundle: str) -> VideoFeatureSpec:
    """The `feature_spec` a bundle's config records under `extra` (written by `finetune`)."""
    raw = extra.get("feature_spec")
    if raw is None:
        raise BundleError(
            f"adapter bundle {bundle} records no feature spec (extra.feature_spec), so the features its "
            "adapter expects are unknown; use a bundle saved by `readcli finetune --task tlg`"
        )
    try:
        return VideoFeatureSpec.from_json(raw, source=f"adapter bundle {bundle}, feature_spec")
    except InputFileError as err:
        raise BundleError(str(err)) from None


def inference_spec(
    backbone: str, model_config: Any, *, bundle_extra: dict[str, Any] | None, bundle: str | None = None
) -> VideoFeatureSpec:
    """The spec to build inputs with: the bundle's, else the backbone card's; widths must fit the model."""
    if bundle_extra is not None:
        spec = spec_from_bundle(bundle_extra, bundle or "?")
        origin = f"adapter bundle {bundle}"
    else:
        card = load_card(card_name(backbone) or DEFAULT_CARD)  # aliases and fresh presets use their card
        spec = spec_from_card(card)
        origin = f"preset card {card.name}"
    try:
        spec.require_input_dims(
            video_dim=int(model_config.v_feat_dim),
            text_dim=int(model_config.t_feat_dim),
            model=f"backbone {backbone}",
        )
    except InvalidValueError as err:
        hint = "" if bundle_extra is not None else "; pass --adapter with a bundle trained on this backbone"
        raise InvalidValueError(f"{err} (features from {origin}){hint}") from None
    return spec


def require_clip_stream(spec: VideoFeatureSpec, *, image_dim: int, text_dim: int, clip_model: str) -> None:
    """`ground` extracts one CLIP image stream and CLIP token states; refuse specs that need more."""
    if len(spec.streams) != 1 or spec.streams[0].dim != image_dim:
        streams = ", ".join(f"{s.name}:{s.dim}" for s in spec.streams)
        raise InvalidValueError(
            f"ground extracts one CLIP image stream ({clip_model}, width {image_dim}); the model's "
            f"features are [{streams}]; use a backbone or bundle trained on {clip_model} image features alone"
        )
    if spec.text_dim != text_dim:
        raise InvalidValueError(
            f"the model takes {spec.text_dim}-wide text features; {clip_model} gives {text_dim}"
        )
