"""A synthetic video-language summarization world: cooking videos of 2-3 steps, their transcripts
and one-line summaries, in a source domain and three target worlds (README-design.md).

Dimension letters: T video rows, D_v video width.

A step is an (action, object) pair. The video shows each step as a few rows near
P_action + P_object; the transcript says "<opener> we <action> the <object> ." or, when the object
is hidden, "... <action> it ."; the summary lists the steps: "cut onion then boil water". A hidden
object can only be read from the video, by binding the spoken action to the video rows that show it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from readcli.errors import InvalidValueError, choices_text

ACTIONS: tuple[str, ...] = ("cut", "boil", "mix", "pour", "fry", "peel", "wash", "grate")
OBJECTS: tuple[str, ...] = ("onion", "water", "egg", "rice", "flour", "milk", "garlic", "carrot")
OPENERS: tuple[str, ...] = ("then", "now", "next")
CHATTER: tuple[str, ...] = (
    "so", "guys", "um", "today", "channel", "subscribe", "like", "music", "weather", "thanks",
    "video", "link", "below", "really", "okay", "great", "hello", "friends", "check", "cheap",
)  # fmt: skip
SPAN_OPEN, SPAN_CLOSE = "sponsor", "anyway"  # an unrelated span: "sponsor ... anyway"
FUNCTION: tuple[str, ...] = ("we", "the", "it", ".", SPAN_OPEN, SPAN_CLOSE)
SPECIALS: tuple[str, ...] = ("<pad>", "</s>", "<unk>")
VOCABULARY: tuple[str, ...] = SPECIALS + ACTIONS + OBJECTS + OPENERS + CHATTER + FUNCTION
WORLDS: tuple[str, ...] = ("visual", "partial", "control")
DOMAINS: tuple[str, ...] = ("source", *WORLDS)
SCENES = 6  # prototypes of video stretches that nothing in the text describes


@dataclass(frozen=True)
class DomainSpec:
    """What one domain's examples look like (README-design.md explains each target's values)."""

    hide: float  # chance that a step's object is "it" in the transcript (then only the video has it)
    camera: bool  # target camera: a partial rotation of the video space, new background and noise
    spans: int  # unrelated transcript spans "sponsor ... anyway" per example (partial world: 2)
    scene_rows: int  # video rows of unrelated scenes per example (partial world: many)
    chatter: int  # at most this many chatter words before each step


SPECS: dict[str, DomainSpec] = {
    "source": DomainSpec(hide=0.5, camera=False, spans=0, scene_rows=0, chatter=10),
    "visual": DomainSpec(hide=1.0, camera=True, spans=0, scene_rows=0, chatter=10),
    # the spans take the place of most chatter, so the transcripts are as long as the source's
    "partial": DomainSpec(hide=0.5, camera=True, spans=2, scene_rows=12, chatter=2),
    "control": DomainSpec(hide=0.0, camera=True, spans=0, scene_rows=0, chatter=10),
}


@dataclass(frozen=True)
class Example:
    """One video: its features, transcript and reference summary, and what the generator knows."""

    video_id: str
    video: np.ndarray  # (T, D_v) float32
    transcript: str
    summary: str
    related_rows: np.ndarray  # (T,) bool: rows that show a step of the summary
    related_words: np.ndarray  # (words,) bool: transcript words that describe a step


@dataclass(frozen=True)
class Look:
    """How the world renders video: step and scene prototypes, and each domain's camera."""

    actions: np.ndarray  # (A, D_v)
    objects: np.ndarray  # (O, D_v)
    scenes: np.ndarray  # (SCENES, D_v)
    background: dict[bool, np.ndarray]  # camera -> (D_v,)
    rotation: dict[bool, np.ndarray]  # camera -> (D_v, D_v) orthogonal
    noise: dict[bool, float]


def _unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((rows, dim))  # (rows, dim)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def partial_rotation(rng: np.random.Generator, dim: int, angle: float) -> np.ndarray:
    """expm(angle * A) for a random skew A with unit spectral radius (orthogonal; angle 0 = identity)."""
    g = rng.standard_normal((dim, dim))
    values, vectors = np.linalg.eig(g - g.T)  # a skew matrix: imaginary eigenvalues
    rotated = (vectors * np.exp(values * angle / np.abs(values).max())) @ np.linalg.inv(vectors)
    return np.real(rotated)


def make_look(video_dim: int, angle: float, noise: float, target_noise: float, seed: int) -> Look:
    rng = np.random.default_rng([seed, 7])
    actions = _unit_rows(rng, len(ACTIONS), video_dim)  # (A, D_v)
    objects = _unit_rows(rng, len(OBJECTS), video_dim)  # (O, D_v)
    scenes = 1.4 * _unit_rows(rng, SCENES, video_dim)  # (SCENES, D_v): as strong as a step row
    background = {False: 0.3 * _unit_rows(rng, 1, video_dim)[0], True: 0.3 * _unit_rows(rng, 1, video_dim)[0]}
    rotation = {False: np.eye(video_dim), True: partial_rotation(rng, video_dim, angle)}
    return Look(actions, objects, scenes, background, rotation, {False: noise, True: target_noise})


def _transcript(
    rng: np.random.Generator, steps: list[tuple[int, int]], spec: DomainSpec
) -> tuple[list[str], list[bool]]:
    """Transcript words and, per word, whether it describes a step."""
    parts: list[tuple[list[str], bool]] = []
    for action, obj in steps:
        parts.append(([str(w) for w in rng.choice(CHATTER, size=rng.integers(0, spec.chatter + 1))], False))
        said = "it" if rng.random() < spec.hide else f"the {OBJECTS[obj]}"
        parts.append((f"{rng.choice(OPENERS)} we {ACTIONS[action]} {said} .".split(), True))
    for _ in range(spec.spans):
        # unrelated talk with a step's very words inside ("... we fry the rice ..."): only the span's
        # context, "sponsor" some words back and "anyway" ahead, says it describes nothing in the video
        before = [str(w) for w in rng.choice(CHATTER, size=rng.integers(1, 3))]
        fake = f"{rng.choice(OPENERS)} we {rng.choice(ACTIONS)} the {rng.choice(OBJECTS)} .".split()
        after = [str(w) for w in rng.choice(CHATTER, size=rng.integers(1, 3))]
        span = [SPAN_OPEN, *before, *fake, *after, SPAN_CLOSE]
        parts.insert(int(rng.integers(0, len(parts) + 1)), (span, False))
    words, related = [], []
    for chunk, is_step in parts:
        words += chunk
        related += [is_step] * len(chunk)
    return words, related


def _video(
    rng: np.random.Generator, steps: list[tuple[int, int]], spec: DomainSpec, look: Look
) -> tuple[np.ndarray, np.ndarray]:
    """Video rows (T, D_v) and which of them show a step."""
    blocks: list[tuple[np.ndarray, bool]] = []
    for action, obj in steps:
        if rng.random() < 0.5:
            blocks.append((look.background[spec.camera][None], False))  # (1, D_v)
        rows = int(rng.integers(2, 4))
        blocks.append((np.tile(look.actions[action] + look.objects[obj], (rows, 1)), True))  # (rows, D_v)
    left = spec.scene_rows
    while left > 0:  # unrelated stretches of 3-6 rows of one scene, anywhere in the video
        rows = min(left, int(rng.integers(3, 7)))
        scene = np.tile(look.scenes[rng.integers(0, SCENES)], (rows, 1))  # (rows, D_v)
        blocks.insert(int(rng.integers(0, len(blocks) + 1)), (scene, False))
        left -= rows
    clean = np.concatenate([b for b, _ in blocks])  # (T, D_v)
    related = np.concatenate([np.full(len(b), r) for b, r in blocks])  # (T,)
    noisy = clean + look.noise[spec.camera] * rng.standard_normal(clean.shape) / np.sqrt(clean.shape[1])
    video = noisy @ look.rotation[spec.camera].T  # (T, D_v): the camera turns the whole space
    return video.astype(np.float32), related


def make_example(rng: np.random.Generator, domain: str, video_id: str, look: Look) -> Example:
    if domain not in SPECS:
        raise InvalidValueError(f"unknown VLS domain {domain!r}: choose one of {choices_text(SPECS)}")
    spec = SPECS[domain]
    count = int(rng.integers(2, 4))
    actions = rng.choice(len(ACTIONS), size=count, replace=False)
    objects = rng.choice(len(OBJECTS), size=count, replace=False)
    steps = [(int(a), int(o)) for a, o in zip(actions, objects, strict=True)]
    words, related_words = _transcript(rng, steps, spec)
    video, related_rows = _video(rng, steps, spec, look)
    summary = " then ".join(f"{ACTIONS[a]} {OBJECTS[o]}" for a, o in steps)
    return Example(
        video_id=video_id,
        video=video,
        transcript=" ".join(words),
        summary=summary,
        related_rows=related_rows,
        related_words=np.array(related_words),
    )


def make_examples(domain: str, part: str, count: int, look: Look, seed: int) -> list[Example]:
    """`count` examples of one domain's part ("train", "test", ...): a stream of its own per part."""
    rng = np.random.default_rng([seed, DOMAINS.index(domain), sum(map(ord, part))])
    return [make_example(rng, domain, f"{domain}-{part}-{i:05d}", look) for i in range(count)]
