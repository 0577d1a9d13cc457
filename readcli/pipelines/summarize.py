"""`readcli summarize`: a summary of one video from its transcript and its video features.

Video features come from a file (`video_features`, (T, D) .npy or .npz key `features`) or are
extracted from the video with CLIP (512-d rows, one per clip_len seconds). The backbone is a
vision-guided BART/T5 (a preset, a directory, or the one a bundle was trained on), optionally with
an adapter bundle from `readcli finetune --task vls`. See docs/summarization.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from readcli.adapters import load_bundle, read_bundle_config
from readcli.adapters.bundle_source import resolve_adapter
from readcli.backbones.vision_guided.checkpoint_io import load_official_checkpoint, load_vision_guided
from readcli.backbones.vision_guided.config import GenerationSettings
from readcli.backbones.vision_guided.model import VisionGuidedSeq2Seq
from readcli.data.how2 import How2Limits
from readcli.errors import InputFileError, InvalidValueError
from readcli.features.clip_encoder import DEFAULT_MODEL, ClipEncoder
from readcli.features.extractor import VideoFailed, extract_videos
from readcli.features.store import VIDEO_KEY, load_feature_array
from readcli.features.weights import resolve_weights
from readcli.options.features import FRAMES_BATCH
from readcli.training.loop import resolve_device
from readcli.weights.provenance import ClipUse, Provenance, features_provenance, run_provenance

log = logging.getLogger(__name__)

TASK = "vls"
DEFAULT_BACKBONE = "bart-base-vg"


@dataclass(frozen=True)
class SummarizeRequest:
    transcript: str
    video: str | None = None
    video_features: str | None = None
    backbone: str | None = None  # None: the bundle's backbone, else DEFAULT_BACKBONE
    adapter: str | None = None
    # beam search; None: the bundle's setting, else GenerationSettings' default
    beams: int | None = None
    no_repeat_ngram_size: int | None = None
    max_length: int | None = None  # counts the decoder start token, as the official max_output_len
    # an official VG-GPLMs checkpoint on top of `backbone` (docs/summarization.md, "Official checkpoints")
    official_checkpoint: str | None = None
    trust_checkpoint: bool = False  # allow a checkpoint that needs arbitrary unpickling
    fusion_heads: int | None = None  # what an official checkpoint cannot tell; None: the preset's
    fusion_layer: int | None = None
    clip_model: str = DEFAULT_MODEL
    clip_weights: str = "openai"
    clip_len: float = 2.0
    device: str = "auto"


@dataclass(frozen=True)
class SummarizeResult:
    summary: str
    backbone: str
    adapter: str | None
    video_source: str  # "features" (a file) or "extracted" (CLIP on the video)
    video_rows: int
    video_dim: int
    transcript_tokens: int
    truncated_transcript: bool
    generation: GenerationSettings
    seconds: float
    warnings: tuple[str, ...] = ()
    provenance: Provenance = Provenance(())  # are the weights the published ones (weights/provenance.py)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["generation"] = asdict(self.generation)
        del data["provenance"]
        return {**data, **self.provenance.to_json()}  # published_weights, weights


def read_transcript(path: str | Path) -> str:
    """The transcript's text, whitespace-normalised; one InputFileError line for missing/empty/not UTF-8."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "not found"
        raise InputFileError(f"--transcript {path}: file {what}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputFileError(
            f"--transcript {path} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}): "
            "convert it to UTF-8"
        ) from None
    text = " ".join(text.removeprefix("\ufeff").split())
    if not text:
        raise InputFileError(f"--transcript {path} is empty: give the video's transcript as text")
    return text


def _check(request: SummarizeRequest) -> None:
    if (request.video is None) == (request.video_features is None):
        raise InvalidValueError(
            "give exactly one video source: a VIDEO file, or --video-features F.npy (rows, dim)"
            if request.video is None
            else "give a VIDEO or --video-features, not both"
        )


def _extract(request: SummarizeRequest, encoder: ClipEncoder | None, device: str) -> np.ndarray:
    path = Path(request.video or "")
    if not path.is_file():
        raise InputFileError(f"video {path}: file {'is a directory' if path.is_dir() else 'not found'}")
    encoder = encoder or ClipEncoder.load(request.clip_model, request.clip_weights, device=device)
    for item in extract_videos([path], encoder, clip_len=request.clip_len, batch_size=FRAMES_BATCH.default):
        if isinstance(item, VideoFailed):
            raise InputFileError(item.reason)
        return item.features  # (T, 512)
    raise InputFileError(f"video {path}: no frames could be decoded")


def _video_dim_needed(model: VisionGuidedSeq2Seq, found: int, source: str, backbone: str) -> None:
    expected = model.config.video_dim
    if found != expected:
        raise InputFileError(
            f"{source}: video features of dimension {found}, but backbone {backbone} expects {expected} "
            f"(expected {expected}, found {found}); give features of width {expected}, or a backbone or "
            f"bundle trained on {found}-d features (finetune --video-dim {found})"
        )


def _generation(request: SummarizeRequest, extra: dict[str, Any]) -> GenerationSettings:
    saved = extra.get("generation")
    base = GenerationSettings(**saved) if isinstance(saved, dict) else GenerationSettings()
    given: dict[str, Any] = {
        "beams": request.beams,
        "no_repeat_ngram_size": request.no_repeat_ngram_size,
        "max_length": request.max_length,
    }
    return replace(base, **{k: v for k, v in given.items() if v is not None})


def _clip_dim(model_name: str) -> int | None:
    """The image-embedding width of an open_clip model, from its config (None when unknown)."""
    # lazy: open_clip (heavy: seconds to import) loads only when a VIDEO is summarized
    import open_clip

    width = (open_clip.get_model_config(model_name) or {}).get("embed_dim")
    return int(width) if isinstance(width, int) else None


def _video_rows(
    request: SummarizeRequest, model: VisionGuidedSeq2Seq, backbone: str, encoder: ClipEncoder | None
) -> np.ndarray:
    """(T, D) video features from the file, or CLIP features of the video; widths checked early."""
    if request.video_features is not None:
        video = load_feature_array(request.video_features, VIDEO_KEY)  # (T, D)
        _video_dim_needed(model, video.shape[1], f"--video-features {request.video_features}", backbone)
        return video
    where = f"CLIP features of {request.video}"
    width = encoder.spec.image_dim if encoder is not None else _clip_dim(request.clip_model)
    if width is not None:  # before CLIP loads and the video is decoded
        _video_dim_needed(model, width, where, backbone)
    video = _extract(request, encoder, request.device)  # (T, D)
    _video_dim_needed(model, video.shape[1], where, backbone)
    return video


def _load(request: SummarizeRequest) -> tuple[VisionGuidedSeq2Seq, str, dict[str, Any]]:
    """(backbone with the bundle's fusion width, its name, the bundle's extra settings)."""
    bundle = read_bundle_config(request.adapter) if request.adapter is not None else None
    if bundle is not None and bundle.task != TASK:
        raise InvalidValueError(
            f"--adapter {request.adapter} was trained for task {bundle.task!r}; "
            f"summarize needs a {TASK} bundle"
        )
    extra = bundle.extra if bundle is not None else {}
    backbone = request.backbone or (bundle.backbone_name if bundle is not None else DEFAULT_BACKBONE)
    if request.official_checkpoint is not None:
        model = load_official_checkpoint(
            request.official_checkpoint, backbone=backbone, fusion_heads=request.fusion_heads,
            fusion_layer=request.fusion_layer, trust=request.trust_checkpoint,
        )  # fmt: skip
        return model, f"{backbone} + {request.official_checkpoint}", extra
    video_dim = extra.get("video_dim") if isinstance(extra.get("video_dim"), int) else None
    return (
        load_vision_guided(backbone, video_dim=video_dim, fusion=_fusion_options(request, extra)),
        backbone,
        extra,
    )


def _fusion_options(request: SummarizeRequest, extra: dict[str, Any]) -> dict[str, Any]:
    """The fusion the bundle was trained with (its recorded config), then --fusion-heads/--fusion-layer."""
    recorded = extra.get("vision_guided")
    options = dict(recorded) if isinstance(recorded, dict) else {}
    for fixed in ("family", "video_dim", "fusion_trained"):  # from the backbone and the bundle's width
        options.pop(fixed, None)
    given = {"fusion_heads": request.fusion_heads, "fusion_layer": request.fusion_layer}
    return {**options, **{k: v for k, v in given.items() if v is not None}}


def _tokenize(model: VisionGuidedSeq2Seq, transcript: str, limits: How2Limits) -> tuple[Any, bool]:
    """Encoded transcript cut at max_input_tokens, and whether it was longer."""
    probe = model.tokenizer([transcript], max_length=limits.max_input_tokens + 1, truncation=True)
    truncated = len(probe["input_ids"][0]) > limits.max_input_tokens
    encoded = model.tokenizer(
        [transcript], max_length=limits.max_input_tokens, truncation=True, return_tensors="pt"
    )
    return encoded, truncated


def run(request: SummarizeRequest, *, encoder: ClipEncoder | None = None) -> SummarizeResult:
    """Summarize one video. `encoder`: an already loaded CLIP encoder (tests, long-lived callers)."""
    began = time.perf_counter()
    _check(request)
    request = replace(request, adapter=resolve_adapter(request.adapter))  # a folder or a Hub id (cached)
    transcript = read_transcript(request.transcript)
    model, backbone, extra = _load(request)
    limits = How2Limits(**extra["limits"]) if isinstance(extra.get("limits"), dict) else How2Limits()
    generation = _generation(request, extra)
    video = _video_rows(request, model, backbone, encoder)
    warnings: list[str] = []
    if request.adapter is not None:
        load_bundle(model, request.adapter, task=TASK)
    elif not model.config.fusion_trained:
        warnings.append(
            f"backbone {backbone}: its fusion head is untrained and no --adapter was given, "
            "so the video does not influence the summary"
        )
    provenance = _provenance(request, backbone, encoder)
    warnings += [provenance.warning] if provenance.warning else []
    device = resolve_device(request.device)
    model.to(device).eval()
    encoded, truncated = _tokenize(model, transcript, limits)
    rows = torch.from_numpy(np.ascontiguousarray(video[: limits.max_video_frames]))[None]  # (1, T, D)
    ids = model.generate(
        encoded["input_ids"].to(device),
        encoded["attention_mask"].to(device),
        rows.to(device),
        torch.ones(rows.shape[:2], dtype=torch.long, device=device),
        generation,
    )  # (1, R)
    return SummarizeResult(
        summary=model.decode(ids)[0],
        backbone=backbone,
        adapter=request.adapter,
        video_source="features" if request.video_features is not None else "extracted",
        video_rows=int(rows.shape[1]),
        video_dim=int(rows.shape[2]),
        transcript_tokens=int(encoded["input_ids"].shape[1]),
        truncated_transcript=truncated,
        generation=generation,
        seconds=time.perf_counter() - began,
        warnings=tuple(warnings),
        provenance=provenance,
    )


def _provenance(request: SummarizeRequest, backbone: str, encoder: ClipEncoder | None) -> Provenance:
    """The text model (or the adapter trained on it) and, for a VIDEO, the CLIP weights (cached digest)."""
    clip = None
    if request.video is not None:
        if encoder is not None:
            clip = ClipUse.of(encoder.spec, request.clip_weights)
        else:
            found = resolve_weights(request.clip_weights, request.clip_model)  # cached by _extract's load
            kind = "openai" if request.clip_weights == "openai" else "path"
            clip = ClipUse(request.clip_model, kind, request.clip_weights, found.sha256)
    # an official VG-GPLMs checkpoint: its weights are what ran (no card records a digest for one)
    weights = request.official_checkpoint if request.official_checkpoint is not None else backbone
    used = run_provenance(backbone=weights, adapter=request.adapter, clip=clip)
    files = features_provenance(Path(request.video_features)) if request.video_features else Provenance(())
    return Provenance(used.checks + files.checks)
