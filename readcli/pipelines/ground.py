"""`readcli ground`: a raw video and queries in, moments and a saliency curve per query out.

Load the backbone (and an adapter bundle), decide the input features (the bundle's spec or the preset
card's), get the video's CLIP features from the content-addressed cache (extracting on a miss),
encode the queries, and run the backbone over overlapping windows of the whole video
(`readcli.inference.windows`). No printing: progress goes through a callback. docs/ground.md.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from readcli.adapters.bundle import load_bundle
from readcli.adapters.bundle_source import bundle_backbone, resolve_adapter
from readcli.backbones.registry import load_backbone
from readcli.errors import InputFileError, InvalidValueError
from readcli.features.cache import FeatureCache
from readcli.features.clip_encoder import DEFAULT_MODEL, ClipEncoder, resolve_device
from readcli.fileio import atomic_write_with, check_output_file
from readcli.inference.backbone_features import inference_spec, require_clip_stream
from readcli.inference.windows import WindowSettings, ground_windows, plan_windows
from readcli.logfilter import dropping_records
from readcli.options.features import FRAMES_BATCH
from readcli.weights.provenance import ClipUse, Provenance, run_provenance

log = logging.getLogger(__name__)

Stage = Literal["load", "extract", "ground"]
DEFAULT_BACKBONE = "moment-detr-clip"


@dataclass(frozen=True)
class GroundRequest:
    video: Path
    queries: tuple[str, ...]
    backbone: str | None = None  # None: the adapter bundle's backbone, else DEFAULT_BACKBONE
    adapter: Path | None = None
    clip_model: str = DEFAULT_MODEL
    clip_weights: str = "openai"
    top_k: int = 5
    device: str = "auto"
    batch_size: int = FRAMES_BATCH.default  # frames per CLIP forward pass
    stride: int | None = None  # clips between window starts; None: half a window
    nms_iou: float = 0.5


@dataclass(frozen=True)
class QueryResult:
    query: str
    moments: tuple[tuple[float, float, float], ...]  # (start s, end s, score), best first, top_k
    saliency: tuple[float, ...]  # one score per clip, rounded to 4 decimals
    tokens: int  # query tokens the model read (SOT and EOT included)


@dataclass(frozen=True)
class GroundResult:
    video: Path
    duration: float  # seconds
    clip_len: float
    n_clips: int
    windows: tuple[tuple[int, int], ...]  # [first clip, end clip) of every window
    cache_hit: bool
    queries: tuple[QueryResult, ...]
    warnings: tuple[str, ...]
    seconds: float
    provenance: Provenance = Provenance(())  # are the weights the published ones (weights/provenance.py)

    def to_json(self) -> list[dict[str, Any]]:
        """Per query: query, duration, pred_relevant_windows [[start, end, score], ...], saliency,
        published_weights and the weights checked."""
        return [
            {
                "query": q.query,
                "duration": round(self.duration, 4),
                "pred_relevant_windows": [list(m) for m in q.moments],
                "pred_saliency_scores": list(q.saliency),
                **self.provenance.to_json(),
            }
            for q in self.queries
        ]


@dataclass(frozen=True)
class GroundProgress:
    stage: Stage
    done: int
    total: int


ProgressCallback = Callable[[GroundProgress], None]


def _validate(request: GroundRequest) -> None:
    """Cheap checks first, before any model loads."""
    if not request.queries:
        raise InvalidValueError('no query given: pass one as the second argument, more with --query "..."')
    for number, query in enumerate(request.queries, start=1):
        if not isinstance(query, str) or not query.strip():
            raise InvalidValueError(f"query {number} ({query!r}) is empty: give at least one word")
    if isinstance(request.top_k, bool) or request.top_k < 1:
        raise InvalidValueError(f"--top-k {request.top_k} is invalid: use an integer >= 1")
    if not (math.isfinite(request.nms_iou) and 0 <= request.nms_iou <= 1):
        raise InvalidValueError(f"--nms-iou {request.nms_iou} is invalid: use a value in [0, 1]")
    if request.stride is not None and request.stride < 1:
        raise InvalidValueError(f"--stride {request.stride} is invalid: use a number of clips >= 1")

    FRAMES_BATCH.validate(request.batch_size)
    if not request.video.is_file():
        what = "is a directory, not a video file" if request.video.is_dir() else "video file not found"
        raise InputFileError(f"{request.video}: {what}")


def _query_warnings(encoder: ClipEncoder, queries: tuple[str, ...], max_q_l: int | None) -> list[str]:
    """One line per query that is cut: by CLIP's context, and/or to the model's max_q_l tokens."""
    warnings = []
    context = int(encoder.tokenizer.context_length)
    for number, query in enumerate(queries, start=1):
        ids, dropped = encoder.tokenize_query(query)  # raises on a query CLIP cannot read
        parts = []
        if dropped:
            parts.append(f"CLIP's {context}-token context dropped its last {dropped} word pieces")
        if max_q_l is not None and len(ids) > max_q_l:
            parts.append(
                f"the model reads only its first {max_q_l} of {len(ids)} tokens (max_q_l, as in training)"
            )
        if parts:
            warnings.append(f"query {number} ({query[:40]!r}...) is truncated: " + "; ".join(parts))
    return warnings


def _load_model(request: GroundRequest) -> tuple[Any, Any]:
    """The backbone on the request's device, with the bundle loaded when given, and its feature spec."""
    assert request.backbone is not None  # run() resolved it (bundle_backbone)
    model = load_backbone(request.backbone, device=resolve_device(request.device))
    extra = None
    if request.adapter is not None:
        loaded = load_bundle(model, request.adapter, task="tlg")
        extra = loaded.config.extra
    spec = inference_spec(request.backbone, model.config, bundle_extra=extra, bundle=str(request.adapter))
    return model, spec


def run(
    request: GroundRequest,
    progress: ProgressCallback | None = None,
    *,
    encoder: ClipEncoder | None = None,
    cache: FeatureCache | None = None,
) -> GroundResult:
    """Ground every query of `request` in its video (module docstring).

    `encoder`: a ClipEncoder already loaded (long-lived callers, tests); the request's clip_model and
    clip_weights are then not used. `cache`: the feature cache (default: `FeatureCache()`).
    """
    began = time.perf_counter()
    report = progress or (lambda event: None)
    _validate(request)
    request = replace(request, adapter=resolve_adapter(request.adapter))  # a folder or a Hub id (cached)
    request = replace(request, backbone=bundle_backbone(request.adapter, request.backbone, DEFAULT_BACKBONE))
    report(GroundProgress("load", 0, 2))
    model, spec = _load_model(request)
    if encoder is None:
        encoder = ClipEncoder.load(request.clip_model, request.clip_weights, device=request.device)
    report(GroundProgress("load", 2, 2))
    require_clip_stream(
        spec, image_dim=encoder.spec.image_dim, text_dim=encoder.spec.text_dim, clip_model=encoder.spec.model
    )
    warnings = _query_warnings(encoder, request.queries, spec.max_q_l)
    provenance = run_provenance(
        backbone=request.backbone,
        adapter=request.adapter,
        clip=ClipUse.of(encoder.spec, request.clip_weights),
    )
    warnings += [provenance.warning] if provenance.warning else []
    video = (cache or FeatureCache()).get(
        request.video,
        encoder,
        clip_len=spec.clip_len,
        batch_size=request.batch_size,
        progress=lambda done, total: report(GroundProgress("extract", done, total)),
    )
    # the encoder logs each truncated query; `ground` reports it in its result instead, once
    with dropping_records(logging.getLogger("readcli.features.clip_encoder"), "query longer than CLIP"):
        texts = [t.numpy() for t in encoder.encode_queries(list(request.queries))]  # (N_L, D_t) each
    settings = WindowSettings(
        window=spec.max_v_l or int(model.config.max_v_l), stride=request.stride, nms_iou=request.nms_iou
    )
    windows = plan_windows(video.n_clips, settings.window, settings.step)
    report(GroundProgress("ground", 0, len(windows) * len(texts)))
    groundings = ground_windows(
        model, [video.features], texts, spec, duration=video.duration, settings=settings
    )
    report(GroundProgress("ground", len(windows) * len(texts), len(windows) * len(texts)))
    queries = tuple(
        QueryResult(
            query=query,
            moments=grounding.moments[: request.top_k],
            saliency=tuple(round(float(v), 4) for v in grounding.saliency),
            tokens=min(len(text), spec.max_q_l or len(text)),
        )
        for query, grounding, text in zip(request.queries, groundings, texts, strict=True)
    )
    return GroundResult(
        video=request.video,
        duration=video.duration,
        clip_len=spec.clip_len,
        n_clips=video.n_clips,
        windows=windows,
        cache_hit=video.hit,
        queries=queries,
        warnings=tuple(warnings),
        seconds=time.perf_counter() - began,
        provenance=provenance,
    )


def check_png(path: Path) -> None:
    """Refuse an unwritable --png before the run: a bad --png must not cost the whole video."""
    check_output_file(path, "--png")


def write_saliency_png(result: GroundResult, path: str | Path) -> None:
    """Per query, the saliency curve over time with its top moments shaded; written atomically."""
    # lazy: matplotlib (heavy to import) loads only when --png is asked
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(result.queries)
    figure = Figure(figsize=(10.0, 1.2 + 2.2 * n))
    FigureCanvasAgg(figure)
    axes_list = figure.subplots(n, 1, squeeze=False)[:, 0]
    times = (np.arange(result.n_clips) + 0.5) * result.clip_len  # (N,) clip centres, seconds
    for axes, query in zip(axes_list, result.queries, strict=True):
        for rank, (start, end, _score) in enumerate(query.moments):
            axes.axvspan(start, end, color="tab:orange", alpha=max(0.12, 0.45 - 0.08 * rank), lw=0)
        axes.plot(times, np.asarray(query.saliency), color="tab:blue", lw=1.2)
        axes.set_xlim(0.0, max(result.duration, result.clip_len))
        axes.set_ylabel("saliency")
        axes.set_title(query.query if len(query.query) <= 90 else query.query[:87] + "...", fontsize=10)
    axes_list[-1].set_xlabel("time (s)")
    figure.tight_layout()
    atomic_write_with(path, lambda handle: figure.savefig(handle, format="png", dpi=100))
