"""A synthetic temporal-grounding world where order matters, written as real dataset directories.

Dimension letters: N_V clips of a video, D_v video width, N_L query tokens, D_t text width, K events.

Every video shows events as runs of clips near the event's prototype, over background noise. The
query's event X occurs twice, its anchor Y once in between, so "X after Y" and "X before Y" name
different occurrences of the same event: a model that ignores order (or the relation word) can do
no better than guess between them. The target domain sees the same events through a shifted camera
(a partial rotation of the feature space, a new background and more noise). docs/demo.md.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from readcli.errors import InvalidValueError

EVENT_NAMES: tuple[str, ...] = (
    "jump", "wave", "run", "sit", "clap", "throw", "dance", "fall", "swim", "climb", "cook", "read",
)  # fmt: skip
RELATIONS: tuple[str, ...] = ("after", "before")
DOMAINS: tuple[str, ...] = ("source", "target")


@dataclass(frozen=True)
class WorldConfig:
    """Everything that shapes the world; its hash names the cache directory."""

    version: int = 1
    num_events: int = 8
    video_dim: int = 32
    text_dim: int = 32
    min_clips: int = 24
    max_clips: int = 32
    min_event_clips: int = 2
    max_event_clips: int = 4
    distractors: int = 2  # extra events per video, besides X (twice) and Y
    clip_len: float = 2.0
    clip_noise: float = 0.6  # norm of the per-clip noise; prototypes have norm ~1
    word_noise: float = 0.3
    source_videos: int = 400  # two queries each ("X after Y" and "X before Y")
    target_train_videos: int = 200  # the pool the low-resource subsets are drawn from
    target_val_videos: int = 150
    shift_angle: float = 1.0  # target: video features rotated by expm(angle * A), A random skew
    target_noise: float = 0.8
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 + self.distractors <= self.num_events <= len(EVENT_NAMES):
            raise InvalidValueError(
                f"num_events={self.num_events} is invalid: use {2 + self.distractors}..{len(EVENT_NAMES)}"
            )
        most = (3 + self.distractors) * (self.max_event_clips + 1) - 1
        if self.min_clips < most or self.max_clips < self.min_clips:
            raise InvalidValueError(
                f"clips {self.min_clips}..{self.max_clips} cannot hold {3 + self.distractors} events of up "
                f"to {self.max_event_clips} clips with gaps: use min_clips >= {most} <= max_clips"
            )

    def digest(self) -> str:
        """12 hex digits of the config's JSON: the world's version in cache paths."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DomainLook:
    """How a domain renders events: prototypes, background, noise, and a rotation of the camera."""

    prototypes: np.ndarray  # (K, D_v)
    background: np.ndarray  # (D_v,)
    rotation: np.ndarray  # (D_v, D_v) orthogonal
    noise: float


def _unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((rows, dim))  # (rows, dim)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _partial_rotation(rng: np.random.Generator, dim: int, angle: float) -> np.ndarray:
    """expm(angle * A) for a random skew A with unit spectral radius: angle 0 is the identity."""
    g = rng.standard_normal((dim, dim))
    skew = g - g.T  # (D_v, D_v)
    values, vectors = np.linalg.eig(skew)
    scale = angle / np.abs(values).max()
    rotated = (vectors * np.exp(values * scale)) @ np.linalg.inv(vectors)
    return np.real(rotated)


def domain_looks(config: WorldConfig) -> tuple[dict[str, DomainLook], np.ndarray]:
    """The two domains' looks and the word vectors (events, then relations): (K + 2, D_t)."""
    rng = np.random.default_rng([config.seed, 1])
    prototypes = _unit_rows(rng, config.num_events, config.video_dim)  # (K, D_v)
    words = _unit_rows(rng, config.num_events + len(RELATIONS), config.text_dim)  # (K + 2, D_t)
    source_bg = 0.5 * _unit_rows(rng, 1, config.video_dim)[0]  # (D_v,)
    target_bg = 0.5 * _unit_rows(rng, 1, config.video_dim)[0]  # (D_v,)
    rotation = _partial_rotation(rng, config.video_dim, config.shift_angle)  # (D_v, D_v)
    identity = np.eye(config.video_dim)
    looks = {
        "source": DomainLook(prototypes, source_bg, identity, config.clip_noise),
        "target": DomainLook(prototypes, target_bg, rotation, config.target_noise),
    }
    return looks, words


@dataclass(frozen=True)
class VideoPlan:
    """One video's layout: its length and its event runs (event, first clip, end clip exclusive)."""

    num_clips: int
    runs: tuple[tuple[int, int, int], ...]
    x: int  # the event that occurs twice
    y: int  # the anchor between its two occurrences


def plan_video(rng: np.random.Generator, config: WorldConfig) -> VideoPlan:
    """X, Y, X in order with distractors mixed in anywhere, one background clip at least between runs."""
    x, y, *others = (
        int(e) for e in rng.choice(config.num_events, size=2 + config.distractors, replace=False)
    )
    order = [x, y, x]
    for other in others:
        order.insert(int(rng.integers(0, len(order) + 1)), other)
    num_clips = int(rng.integers(config.min_clips, config.max_clips + 1))
    lengths = rng.integers(config.min_event_clips, config.max_event_clips + 1, size=len(order))
    spare = num_clips - int(lengths.sum()) - (len(order) - 1)
    gaps = rng.multinomial(spare, np.ones(len(order) + 1) / (len(order) + 1))
    runs, cursor = [], int(gaps[0])
    for i, (event, length) in enumerate(zip(order, lengths, strict=True)):
        runs.append((event, cursor, cursor + int(length)))
        cursor += int(length) + 1 + int(gaps[i + 1])
    return VideoPlan(num_clips, tuple(runs), x, y)


def render_video(rng: np.random.Generator, look: DomainLook, plan: VideoPlan) -> np.ndarray:
    """(N_V, D_v) clip features: background or prototype, plus noise, seen through the domain's camera."""
    dim = look.background.shape[0]
    clean = np.tile(look.background, (plan.num_clips, 1))  # (N_V, D_v)
    for event, start, end in plan.runs:
        clean[start:end] = look.prototypes[event]
    noise = rng.standard_normal((plan.num_clips, dim)) * (look.noise / np.sqrt(dim))  # (N_V, D_v)
    return ((clean + noise) @ look.rotation).astype(np.float32)  # (N_V, D_v)


def render_query(
    rng: np.random.Generator, words: np.ndarray, plan: VideoPlan, relation: str, noise: float
) -> np.ndarray:
    """(N_L, D_t) token features for "X relation Y": word vectors plus noise."""
    num_events = words.shape[0] - len(RELATIONS)
    ids = [plan.x, num_events + RELATIONS.index(relation), plan.y]
    tokens = words[ids]  # (N_L, D_t)
    tokens = tokens + rng.standard_normal(tokens.shape) * (noise / np.sqrt(words.shape[1]))
    return tokens.astype(np.float32)


def query_row(qid: int, vid: str, plan: VideoPlan, relation: str, clip_len: float) -> dict[str, Any]:
    """A QVHighlights-layout annotation row; the answer is X's occurrence on the named side of Y."""
    first, second = (run for run in plan.runs if run[0] == plan.x)
    _, start, end = second if relation == "after" else first
    ids = list(range(start, end))
    # the middle of the moment scores higher than its edges, so the saliency ranking is informative
    scores = [[4, 4, 4] if start < i < end - 1 else [2, 3, 2] for i in ids]
    return {
        "qid": qid,
        "query": f"{EVENT_NAMES[plan.x]} {relation} {EVENT_NAMES[plan.y]}",
        "duration": plan.num_clips * clip_len,
        "vid": vid,
        "relevant_windows": [[start * clip_len, end * clip_len]],
        "relevant_clip_ids": ids,
        "saliency_scores": scores,
    }


def _split_sizes(config: WorldConfig, domain: str) -> dict[str, tuple[int, int]]:
    """split -> (videos, queries per video)."""
    if domain == "source":
        return {"train": (config.source_videos, 2), "val": (max(50, config.source_videos // 6), 1)}
    return {"train": (config.target_train_videos, 1), "val": (config.target_val_videos, 1)}


def write_domain(config: WorldConfig, domain: str, root: Path) -> None:
    """Write one domain as a grounding dataset directory (docs/data.md layout) under `root`."""
    if domain not in DOMAINS:
        raise InvalidValueError(f"unknown demo domain {domain!r}: choose one of {', '.join(DOMAINS)}")
    looks, words = domain_looks(config)
    look = looks[domain]
    (root / "video_features" / "clip").mkdir(parents=True)
    (root / "text_features").mkdir()
    qid = 0
    for index, (split, (videos, per_video)) in enumerate(_split_sizes(config, domain).items()):
        rng = np.random.default_rng([config.seed, 2, DOMAINS.index(domain), index])
        rows = []
        for v in range(videos):
            plan = plan_video(rng, config)
            vid = f"{domain}_{split}_{v:05d}"
            np.savez(root / "video_features" / "clip" / f"{vid}.npz", features=render_video(rng, look, plan))
            relations = RELATIONS if per_video == 2 else (RELATIONS[int(rng.integers(0, 2))],)
            for relation in relations:
                text = render_query(rng, words, plan, relation, config.word_noise)
                np.savez(root / "text_features" / f"qid{qid}.npz", last_hidden_state=text)
                rows.append(query_row(qid, vid, plan, relation, config.clip_len))
                qid += 1
        lines = "".join(json.dumps(row) + "\n" for row in rows)
        (root / f"{split}.jsonl").write_text(lines, encoding="utf-8")
    manifest = {"format": "qvhighlights", "clip_len": config.clip_len}
    (root / "dataset.json").write_text(json.dumps(manifest), encoding="utf-8")


def ensure_world(config: WorldConfig, directory: Path) -> tuple[Path, bool]:
    """`directory` holding source/ and target/ datasets, written once (atomically); True if it was reused."""
    if (directory / "world.json").is_file():
        return directory, True
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".world-", dir=directory.parent))
    try:
        for domain in DOMAINS:
            write_domain(config, domain, staging / domain)
        (staging / "world.json").write_text(json.dumps(asdict(config), indent=2), encoding="utf-8")
        if directory.exists():  # an interrupted earlier attempt: world.json was missing
            shutil.rmtree(directory)
        staging.rename(directory)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return directory, False
