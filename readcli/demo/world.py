"""The synthetic grounding worlds of `readcli demo --task tlg`, written as real dataset directories.

Dimension letters: N_V clips of a video, D_v video width, N_L query tokens, D_t text width, K events.

A video is background clips with a few events, each a run of clips near its prototype, plus noise;
a query "person X" names one event and the answer is its run. The source domain is that task in its
cleanest form, so a small backbone can master it. Three target worlds each change one thing
(docs/demo.md explains why each follows from the paper's two mechanisms):

- control: a new camera (a partial rotation of the feature space, a new background, more noise);
  nothing about time or about which tokens have a counterpart changes;
- temporal: an event is now a motion, clips alternating between two poses; pose k is also one of
  the two poses of event k - 1, which every video shows too, so a single clip cannot say which
  event it belongs to: only its neighbours can;
- partial: videos twice as long with twice the events, most of it unrelated to the query, and
  three query words that describe nothing in the video.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from readcli.errors import InvalidValueError

EVENT_NAMES: tuple[str, ...] = (
    "jump", "wave", "run", "sit", "clap", "throw", "dance", "fall", "swim", "climb", "cook", "read",
)  # fmt: skip
FILLER_NAMES: tuple[str, ...] = (
    "today", "again", "quietly", "outside", "friend", "morning", "really", "maybe", "slowly", "happily",
)  # fmt: skip
WORLDS: tuple[str, ...] = ("control", "temporal", "partial")
DOMAINS: tuple[str, ...] = ("source", *WORLDS)


@dataclass(frozen=True)
class WorldConfig:
    """Everything that shapes the worlds; its hash names the cache directory."""

    version: int = 2
    num_events: int = 8
    video_dim: int = 32
    text_dim: int = 32
    clip_len: float = 2.0
    min_clips: int = 20
    max_clips: int = 28
    events_per_video: int = 3
    min_event_clips: int = 3
    max_event_clips: int = 6
    clip_noise: float = 0.5  # norm of the per-clip noise; prototypes have norm 1
    word_noise: float = 0.3
    source_videos: int = 600  # one query per event shown: 3 queries each
    source_val_videos: int = 200  # one query each: the held-out mastery check
    pool_videos: int = 300  # the labelled target pool (one query each); dev is carved from it
    dev_queries: int = 100
    test_videos: int = 500
    shift_angle: float = 1.0  # control: features rotated by expm(angle * A), A random skew
    control_noise: float = 0.7
    partial_scale: int = 2  # partial: videos and event counts this many times longer
    filler_words: int = 3  # partial: query words with no counterpart in the video
    seed: int = 0

    def __post_init__(self) -> None:
        if not 3 <= self.events_per_video <= self.num_events // self.partial_scale:
            raise InvalidValueError(
                f"events_per_video={self.events_per_video} is invalid: use 3.."
                f"{self.num_events // self.partial_scale} (num_events / partial_scale)"
            )
        most = self.events_per_video * (self.max_event_clips + 1) - 1
        if self.min_clips < most or self.max_clips < self.min_clips:
            raise InvalidValueError(
                f"clips {self.min_clips}..{self.max_clips} cannot hold {self.events_per_video} events of "
                f"up to {self.max_event_clips} clips with gaps: use {most} <= min_clips <= max_clips"
            )
        if not 0 < self.dev_queries < self.pool_videos:
            raise InvalidValueError(
                f"dev_queries={self.dev_queries} is invalid: use 1..{self.pool_videos - 1} (the pool)"
            )

    def digest(self) -> str:
        """12 hex digits of the config's JSON: the worlds' version in cache paths."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Look:
    """How a domain renders clips: prototypes, background, noise, a camera rotation, motion or not."""

    prototypes: np.ndarray  # (K, D_v)
    background: np.ndarray  # (D_v,)
    rotation: np.ndarray  # (D_v, D_v) orthogonal
    noise: float
    motion: bool = False  # event k alternates poses k and k + 1 (mod K)


@dataclass(frozen=True)
class Layout:
    """How a domain lays events out and words its queries."""

    min_clips: int
    max_clips: int
    events: int
    confuser: bool = False  # every video also shows event X - 1 (shares pose X with X in motion)
    fillers: int = 0


@dataclass(frozen=True)
class VideoPlan:
    """One video: its length and its event runs (event, first clip, end clip exclusive)."""

    num_clips: int
    runs: tuple[tuple[int, int, int], ...]
    phase: tuple[int, ...]  # per run, which pose a motion event starts with (0 or 1)


def _unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((rows, dim))  # (rows, dim)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _partial_rotation(rng: np.random.Generator, dim: int, angle: float) -> np.ndarray:
    """expm(angle * A) for a random skew A with unit spectral radius: angle 0 is the identity."""
    g = rng.standard_normal((dim, dim))
    skew = g - g.T  # (D_v, D_v)
    values, vectors = np.linalg.eig(skew)
    scale = angle / np.abs(values).max()
    return np.real((vectors * np.exp(values * scale)) @ np.linalg.inv(vectors))


def vocabulary(config: WorldConfig) -> np.ndarray:
    """Word vectors: "person", then the K events, then the fillers: (1 + K + F, D_t)."""
    rng = np.random.default_rng([config.seed, 1])
    return _unit_rows(rng, 1 + config.num_events + len(FILLER_NAMES), config.text_dim)


def domain_look(config: WorldConfig, domain: str) -> Look:
    """The look of `domain`: the source's, except the control's camera and the temporal's motion."""
    if domain not in DOMAINS:
        raise InvalidValueError(f"unknown demo world {domain!r}: choose one of {', '.join(DOMAINS)}")
    rng = np.random.default_rng([config.seed, 2])
    prototypes = _unit_rows(rng, config.num_events, config.video_dim)  # (K, D_v)
    source_bg = 0.5 * _unit_rows(rng, 1, config.video_dim)[0]  # (D_v,)
    control_bg = 0.5 * _unit_rows(rng, 1, config.video_dim)[0]  # (D_v,)
    rotation = _partial_rotation(rng, config.video_dim, config.shift_angle)  # (D_v, D_v)
    if domain == "control":
        return Look(prototypes, control_bg, rotation, config.control_noise)
    identity = np.eye(config.video_dim)
    return Look(prototypes, source_bg, identity, config.clip_noise, motion=domain == "temporal")


def domain_layout(config: WorldConfig, domain: str) -> Layout:
    base = Layout(config.min_clips, config.max_clips, config.events_per_video)
    if domain == "temporal":
        return Layout(base.min_clips, base.max_clips, base.events, confuser=True)
    if domain == "partial":
        s = config.partial_scale
        return Layout(s * base.min_clips, s * base.max_clips, s * base.events, fillers=config.filler_words)
    return base


def plan_video(rng: np.random.Generator, config: WorldConfig, layout: Layout, x: int) -> VideoPlan:
    """Events (X among them, X - 1 too with a confuser) in random order, one clip at least between runs."""
    k = config.num_events
    fixed = [x, (x - 1) % k] if layout.confuser else [x]
    others = [e for e in range(k) if e not in fixed]
    chosen = fixed + [int(e) for e in rng.choice(others, size=layout.events - len(fixed), replace=False)]
    order = [chosen[i] for i in rng.permutation(len(chosen))]
    num_clips = int(rng.integers(layout.min_clips, layout.max_clips + 1))
    lengths = rng.integers(config.min_event_clips, config.max_event_clips + 1, size=len(order))
    spare = num_clips - int(lengths.sum()) - (len(order) - 1)
    gaps = rng.multinomial(spare, np.ones(len(order) + 1) / (len(order) + 1))
    runs, cursor = [], int(gaps[0])
    for i, (event, length) in enumerate(zip(order, lengths, strict=True)):
        runs.append((event, cursor, cursor + int(length)))
        cursor += int(length) + 1 + int(gaps[i + 1])
    phase = tuple(int(p) for p in rng.integers(0, 2, size=len(order)))
    return VideoPlan(num_clips, tuple(runs), phase)


def render_video(rng: np.random.Generator, look: Look, plan: VideoPlan) -> np.ndarray:
    """(N_V, D_v) clip features: background or an event's pose, plus noise, through the camera."""
    k, dim = look.prototypes.shape
    clean = np.tile(look.background, (plan.num_clips, 1))  # (N_V, D_v)
    for (event, start, end), phase in zip(plan.runs, plan.phase, strict=True):
        for clip in range(start, end):
            second_pose = look.motion and (clip - start + phase) % 2 == 1
            clean[clip] = look.prototypes[(event + 1) % k if second_pose else event]
    noise = rng.standard_normal((plan.num_clips, dim)) * (look.noise / np.sqrt(dim))  # (N_V, D_v)
    return ((clean + noise) @ look.rotation).astype(np.float32)  # (N_V, D_v)


def query_words(rng: np.random.Generator, config: WorldConfig, x: int, fillers: int) -> list[int]:
    """Vocabulary rows of "person X" and, in the partial world, filler words after it."""
    extra = [int(f) for f in rng.choice(len(FILLER_NAMES), size=fillers, replace=False)] if fillers else []
    return [0, 1 + x, *(1 + config.num_events + f for f in extra)]


def render_query(rng: np.random.Generator, words: np.ndarray, ids: list[int], noise: float) -> np.ndarray:
    """(N_L, D_t) token features: word vectors plus noise."""
    tokens = words[ids]  # (N_L, D_t)
    tokens = tokens + rng.standard_normal(tokens.shape) * (noise / np.sqrt(words.shape[1]))
    return tokens.astype(np.float32)


def query_text(config: WorldConfig, ids: list[int]) -> str:
    names = ("person", *EVENT_NAMES[: config.num_events], *FILLER_NAMES)
    return " ".join(names[i] for i in ids)


def query_row(qid: int, vid: str, plan: VideoPlan, x: int, text: str, clip_len: float) -> dict[str, Any]:
    """A QVHighlights-layout annotation row; the answer is X's run."""
    _, start, end = next(run for run in plan.runs if run[0] == x)
    ids = list(range(start, end))
    # the middle of the moment scores higher than its edges, so the saliency ranking is informative
    scores = [[4, 4, 4] if start < i < end - 1 else [2, 3, 2] for i in ids]
    return {
        "qid": qid,
        "query": text,
        "duration": plan.num_clips * clip_len,
        "vid": vid,
        "relevant_windows": [[start * clip_len, end * clip_len]],
        "relevant_clip_ids": ids,
        "saliency_scores": scores,
    }
