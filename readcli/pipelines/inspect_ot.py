"""`inspect-ot`: the partial transport plan between one video's clips and one query's tokens.

Reads two feature files in the Moment-DETR layout (video: key `features`, (N_V, d); text: key
`last_hidden_state`, (N_L, d)), or takes a video file and a query and extracts them the way
`readcli ground` does (CLIP rows per clip through the feature cache, the query's token states);
takes cost = 1 - cosine of the rows as stored and uniform weights, and solves entropic partial OT
with readcli's batched solver (which matches POT's `entropic_partial_wasserstein`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from readcli.alignment import cosine_cost, solve_partial_ot
from readcli.errors import InvalidValueError
from readcli.features.cache import FeatureCache
from readcli.features.clip_encoder import ClipEncoder
from readcli.features.store import TEXT_KEY, VIDEO_KEY, check_feature_array, load_feature_array
from readcli.features.token_words import token_labels
from readcli.fileio import atomic_write_with, check_output_file
from readcli.options.alignment import MASS, MAX_ITER, TAU, TOL
from readcli.weights.provenance import ClipUse, Provenance, features_provenance, run_provenance


@dataclass(frozen=True)
class InspectOTRequest:
    """Video side: `video_features` or `video`; text side: `text_features` or `query` (one of each)."""

    video_features: Path | None = None
    text_features: Path | None = None
    video: Path | None = None
    query: str | None = None
    clip_model: str = "ViT-B-32"
    clip_weights: str = "openai"
    clip_len: float = 2.0
    device: str = "auto"
    mass: float = MASS.default
    tau: float = TAU.default
    max_iter: int = MAX_ITER.default
    tol: float = TOL.default
    top_k: int = 10

    def __post_init__(self) -> None:
        # checked before any file is read, with the option names a user typed
        if (self.video_features is None) == (self.video is None):
            raise InvalidValueError("give the video side once: --video-features V.npz or --video VIDEO")
        if (self.text_features is None) == (self.query is None):
            raise InvalidValueError('give the text side once: --text-features T.npz or --query "QUERY"')
        if not (math.isfinite(self.clip_len) and self.clip_len > 0):
            raise InvalidValueError(f"--clip-len {self.clip_len} is invalid: use seconds > 0")
        MASS.validate(self.mass)  # ranges and words: readcli.options.alignment
        TAU.validate(self.tau)
        MAX_ITER.validate(self.max_iter)
        TOL.validate(self.tol)
        if self.top_k < 0:
            raise InvalidValueError(f"--top {self.top_k} is invalid: use an integer >= 0")


@dataclass(frozen=True)
class AlignedPair:
    clip: int  # row of the video features
    token: int  # row of the text features
    weight: float  # transported mass
    cost: float  # 1 - cosine


@dataclass(frozen=True)
class InspectOTResult:
    distance: float  # <plan, C>, POT's partial Wasserstein distance of the entropic plan
    mass: float
    tau: float
    iterations: int
    converged: bool
    log_domain: bool
    plan: np.ndarray  # (N_V, N_L) float32
    cost: np.ndarray  # (N_V, N_L) float32
    top_pairs: tuple[AlignedPair, ...]
    tokens: tuple[str, ...] = ()  # the query's words as CLIP split them, one per token row; () from files
    provenance: Provenance = Provenance(())  # are the weights the published ones (weights/provenance.py)

    def token_name(self, token: int) -> str:
        """`5 camera` when the query's words are known, else `5`."""
        return f"{token} {self.tokens[token]}" if token < len(self.tokens) else str(token)

    def to_json(self) -> dict[str, object]:
        """The `--json` document: distance, mass, tau, iterations, the plan as nested lists with its
        orientation (rows are video clips, columns are query tokens: plan[clip][token]), the tokens'
        words when known, and whether the weights are the published ones (docs/pvla.md)."""
        return {
            "distance": self.distance,
            "mass": self.mass,
            "tau": self.tau,
            "iterations": self.iterations,
            "plan_axes": ["clip", "token"],
            "plan_shape": list(self.plan.shape),
            "tokens": list(self.tokens) or None,
            "plan": self.plan.astype(float).tolist(),
            **self.provenance.to_json(),
        }


def run(
    request: InspectOTRequest, *, encoder: ClipEncoder | None = None, cache: FeatureCache | None = None
) -> InspectOTResult:
    """Load (or extract), check, solve, and list the heaviest (clip, token) pairs.

    `encoder` / `cache`: an already loaded CLIP encoder and a feature cache (long-lived callers,
    tests); by default the request's CLIP model is loaded when a video or a query is given.
    """
    if encoder is None and (request.video is not None or request.query is not None):
        encoder = ClipEncoder.load(request.clip_model, request.clip_weights, device=request.device)
    video, text = _features(request, encoder, cache)  # (N_V, d), (N_L, d)
    tokens: tuple[str, ...] = ()
    if request.query is not None and encoder is not None:
        tokens = tuple(token_labels(encoder, request.query))  # one per row of `text`
    used = run_provenance(
        backbone=None, adapter=None, clip=ClipUse.of(encoder.spec, request.clip_weights) if encoder else None
    )
    files = features_provenance(request.video_features, request.text_features)
    with torch.no_grad():
        cost = cosine_cost(torch.from_numpy(video)[None], torch.from_numpy(text)[None])  # (1, N_V, N_L)
        solution = solve_partial_ot(
            cost, mass=request.mass, tau=request.tau, max_iter=request.max_iter, tol=request.tol
        )
    plan = solution.plan[0].float().numpy()  # (N_V, N_L)
    cost_np = cost[0].float().numpy()  # (N_V, N_L)
    return InspectOTResult(
        distance=float(solution.distance[0]),
        mass=request.mass,
        tau=request.tau,
        iterations=int(solution.iterations[0]),
        converged=bool(solution.converged[0]),
        log_domain=bool(solution.log_domain[0]),
        plan=plan,
        cost=cost_np,
        top_pairs=_top_pairs(plan, cost_np, request.top_k),
        tokens=tokens,
        provenance=Provenance(used.checks + files.checks),
    )


def _features(
    request: InspectOTRequest, encoder: ClipEncoder | None, cache: FeatureCache | None
) -> tuple[np.ndarray, np.ndarray]:
    """The video rows and the query's token rows, from files or extracted like `readcli ground`."""
    if encoder is None and (request.video is not None or request.query is not None):
        encoder = ClipEncoder.load(request.clip_model, request.clip_weights, device=request.device)
    if request.video_features is not None:
        video = load_feature_array(request.video_features, VIDEO_KEY)  # (N_V, d)
    else:
        assert encoder is not None and request.video is not None  # by the request's checks
        cached = (cache or FeatureCache()).get(request.video, encoder, clip_len=request.clip_len)
        video = check_feature_array(cached.features, str(request.video))  # (N_V, d)
    if request.text_features is not None:
        text = load_feature_array(request.text_features, TEXT_KEY, expected_dim=video.shape[1])
    else:
        assert encoder is not None and request.query is not None  # by the request's checks
        states = encoder.encode_query(request.query).float().cpu().numpy()  # (N_L, d)
        text = check_feature_array(states, f"query {request.query!r}", expected_dim=video.shape[1])
    return video, text


def _top_pairs(plan: np.ndarray, cost: np.ndarray, k: int) -> tuple[AlignedPair, ...]:
    order = np.argsort(-plan, axis=None, kind="stable")[:k]  # heaviest first, ties by position
    rows, cols = np.unravel_index(order, plan.shape)
    return tuple(
        AlignedPair(int(r), int(c), float(plan[r, c]), float(cost[r, c]))
        for r, c in zip(rows, cols, strict=True)
    )


def check_png(path: Path) -> None:
    """Refuse an unwritable --png before any features are read or extracted."""
    check_output_file(path, "--png")


def write_plan_png(result: InspectOTResult, path: str | Path) -> None:
    """The plan as an image (tokens down, clips across), written atomically; no global pyplot state."""
    # lazy: matplotlib (heavy to import) loads only when --png is asked
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_v, n_l = result.plan.shape
    figure = Figure(figsize=(min(16.0, 2 + n_v * 0.12), min(10.0, 1.5 + n_l * 0.25)))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    image = axes.imshow(result.plan.T, aspect="auto", cmap="magma", interpolation="nearest")
    axes.set_xlabel("video clip")
    axes.set_ylabel("text token")
    axes.set_title(f"partial OT plan: distance {result.distance:.4f}, mass {result.mass}, tau {result.tau}")
    figure.colorbar(image, ax=axes, label="transported mass")
    figure.tight_layout()
    atomic_write_with(path, lambda handle: figure.savefig(handle, format="png", dpi=100))
