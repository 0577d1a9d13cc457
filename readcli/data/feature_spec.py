"""What a model's video and text inputs are made of: the feature spec recorded in every bundle.

Several video feature streams (e.g. SlowFast and CLIP) are concatenated per clip in a declared order.
Two popular toolkits use opposite orders, and a model fed the other order runs without error and
predicts nonsense, so the order is part of the spec and `require_compatible` checks it on load.
An optional audio stream (UMT's second modality, one row per clip) is recorded beside the video:
a model trained with audio needs audio, and one trained without cannot take it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from readcli.errors import InputFileError, InvalidValueError, choices_text

SPEC_FORMAT = 1
TEF_DIM = 2  # the temporal endpoint feature [start/L, end/L] appended to every clip
AUDIO_STREAM = "audio"  # the name of the audio StreamSpec (its files: DIR/audio_features/{vid}.npz)


@dataclass(frozen=True)
class StreamSpec:
    """One video feature stream: its directory name, width, and whether rows are L2-normalised."""

    name: str
    dim: int
    l2_normalize: bool = True

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\") or self.name in (".", ".."):
            raise InvalidValueError(f"video stream name {self.name!r} must be a plain directory name")
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim <= 0:
            raise InvalidValueError(
                f"video stream {self.name!r}: dim must be a positive integer, got {self.dim!r}"
            )


@dataclass(frozen=True)
class VideoFeatureSpec:
    """Ordered video streams, text width, TEF, clip length and max lengths (None: no limit)."""

    streams: tuple[StreamSpec, ...]
    text_dim: int
    tef: bool = True
    clip_len: float = 2.0
    max_v_l: int | None = 75
    max_q_l: int | None = 32
    normalize_text: bool = True
    audio: StreamSpec | None = None  # (N_V, D_A) per clip, cut to the video's clips; None: no audio

    def __post_init__(self) -> None:
        if not self.streams:
            raise InvalidValueError("a feature spec needs at least one video stream")
        names = [s.name for s in self.streams]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidValueError(f"video stream listed twice: {choices_text(duplicates)}")
        if isinstance(self.text_dim, bool) or not isinstance(self.text_dim, int) or self.text_dim <= 0:
            raise InvalidValueError(f"text_dim must be a positive integer, got {self.text_dim!r}")
        if (
            not isinstance(self.clip_len, int | float)
            or not math.isfinite(self.clip_len)
            or self.clip_len <= 0
        ):
            raise InvalidValueError(f"clip_len must be a positive number of seconds, got {self.clip_len!r}")
        for label, value in (("max_v_l", self.max_v_l), ("max_q_l", self.max_q_l)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InvalidValueError(f"{label} must be a positive integer or null, got {value!r}")

    @property
    def stream_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.streams)

    @property
    def stream_dims(self) -> tuple[int, ...]:
        return tuple(s.dim for s in self.streams)

    @property
    def video_dim(self) -> int:
        """Width of one model input clip: the streams' widths plus the TEF."""
        return sum(self.stream_dims) + (TEF_DIM if self.tef else 0)

    @property
    def audio_dim(self) -> int:
        """Width of one audio row (0: no audio stream)."""
        return self.audio.dim if self.audio is not None else 0

    def to_json(self) -> dict[str, Any]:
        """The bundle form; `audio` appears only with an audio stream (older bundles have none)."""
        audio = {} if self.audio is None else {"audio": _stream_json(self.audio)}
        return {
            "format": SPEC_FORMAT,
            "video_streams": [_stream_json(s) for s in self.streams],
            "tef": self.tef,
            "clip_len": self.clip_len,
            "max_v_l": self.max_v_l,
            "max_q_l": self.max_q_l,
            "text_dim": self.text_dim,
            "normalize_text": self.normalize_text,
            **audio,
        }

    @classmethod
    def from_json(cls, obj: object, *, source: str = "feature spec") -> VideoFeatureSpec:
        """Parse `to_json` output; unknown or missing keys are errors naming `source`."""
        if not isinstance(obj, dict):
            raise InputFileError(f"{source}: expected a JSON object, found {type(obj).__name__}")
        known = {
            "format",
            "video_streams",
            "tef",
            "clip_len",
            "max_v_l",
            "max_q_l",
            "text_dim",
            "normalize_text",
            "audio",
        }
        unknown = sorted(set(obj) - known)
        if unknown:
            raise InputFileError(
                f"{source}: unknown keys {choices_text(unknown)} (valid: {choices_text(sorted(known))})"
            )
        if obj.get("format") != SPEC_FORMAT:
            raise InputFileError(
                f"{source}: feature spec format {obj.get('format')!r}, expected {SPEC_FORMAT}"
            )
        missing = sorted({"video_streams", "text_dim"} - set(obj))
        if missing:
            raise InputFileError(f"{source}: missing keys {choices_text(missing)}")
        try:
            streams = tuple(_stream_from_json(s, source) for s in obj["video_streams"])
            audio = _stream_from_json(obj["audio"], source) if obj.get("audio") is not None else None
            return cls(
                streams=streams,
                text_dim=obj["text_dim"],
                tef=bool(obj.get("tef", True)),
                clip_len=obj.get("clip_len", 2.0),
                max_v_l=obj.get("max_v_l", 75),
                max_q_l=obj.get("max_q_l", 32),
                normalize_text=bool(obj.get("normalize_text", True)),
                audio=audio,
            )
        except InvalidValueError as err:
            raise InputFileError(f"{source}: {err}") from None

    def require_compatible(
        self, other: VideoFeatureSpec, *, ours: str = "bundle", theirs: str = "data"
    ) -> None:
        """Refuse features that would mean something else to a model trained on `self`.

        Stream order, widths, normalisation, TEF, clip length, text width and the audio stream must
        agree; max lengths may differ (they only bound how much of a video is read).
        """
        if self.stream_names != other.stream_names:
            same_set = sorted(self.stream_names) == sorted(other.stream_names)
            hint = (
                " (the same streams in another order: concatenating them in the wrong order fails silently;"
                ' declare the order in dataset.json "video_streams" or with --video-streams)'
                if same_set
                else ""
            )
            raise InvalidValueError(
                f"video feature streams differ: {ours} has [{choices_text(self.stream_names)}], "
                f"{theirs} has [{choices_text(other.stream_names)}]{hint}"
            )
        problems = []
        for mine, yours in zip(self.streams, other.streams, strict=True):
            if mine.dim != yours.dim:
                problems.append(f"stream {mine.name!r} width {ours} {mine.dim} vs {theirs} {yours.dim}")
            if mine.l2_normalize != yours.l2_normalize:
                problems.append(
                    f"stream {mine.name!r} L2 normalisation {ours} {mine.l2_normalize} "
                    f"vs {theirs} {yours.l2_normalize}"
                )
        for field in ("tef", "clip_len", "text_dim", "normalize_text"):
            mine_value, your_value = getattr(self, field), getattr(other, field)
            if mine_value != your_value:
                problems.append(f"{field} {ours} {mine_value} vs {theirs} {your_value}")
        problems += _audio_differences(self.audio, other.audio, ours, theirs)
        if problems:
            raise InvalidValueError("feature spec mismatch: " + "; ".join(problems))

    def require_input_dims(
        self, *, video_dim: int, text_dim: int, audio_dim: int | None = None, model: str = "the backbone"
    ) -> None:
        """Refuse features whose widths differ from what `model` takes (expected vs found).

        `audio_dim`: the audio width the model takes (0: none, e.g. Moment-DETR or a video-only UMT);
        None skips the audio check (callers that build no audio input).
        """
        problems = []
        if self.video_dim != video_dim:
            parts = " + ".join(f"{s.dim} ({s.name})" for s in self.streams) + (
                f" + {TEF_DIM} (TEF)" if self.tef else ""
            )
            problems.append(f"video input width: expected {video_dim}, found {self.video_dim} = {parts}")
        if self.text_dim != text_dim:
            problems.append(f"text input width: expected {text_dim}, found {self.text_dim}")
        if audio_dim is not None and audio_dim != self.audio_dim:
            problems.append(_audio_problem(audio_dim, self.audio_dim))
        if problems:
            raise InvalidValueError(f"features do not fit {model}: " + "; ".join(problems))


def _stream_json(stream: StreamSpec) -> dict[str, Any]:
    return {"name": stream.name, "dim": stream.dim, "l2_normalize": stream.l2_normalize}


def _audio_differences(
    mine: StreamSpec | None, yours: StreamSpec | None, ours: str, theirs: str
) -> list[str]:
    """`require_compatible`'s audio part: presence, width and L2 flag."""
    if mine is None or yours is None:
        if mine is yours:
            return []
        text = ["none" if a is None else f"{a.dim}-wide" for a in (mine, yours)]
        return [f"audio features {ours} {text[0]} vs {theirs} {text[1]}"]
    problems = []
    if mine.dim != yours.dim:
        problems.append(f"audio width {ours} {mine.dim} vs {theirs} {yours.dim}")
    if mine.l2_normalize != yours.l2_normalize:
        problems.append(f"audio L2 normalisation {ours} {mine.l2_normalize} vs {theirs} {yours.l2_normalize}")
    return problems


def _audio_problem(expected: int, found: int) -> str:
    """What is wrong with the audio input, naming the model's and the data's side."""
    if not found:
        return (
            f"audio input: the backbone takes {expected}-wide audio features, the data has none "
            "(expected DIR/audio_features/{vid}.npz; or use a backbone with a_feat_dim 0)"
        )
    if not expected:
        return (
            f"audio input: the data has {found}-wide audio features (audio_features/), the backbone "
            "takes no audio (Moment-DETR or a UMT with a_feat_dim 0); use a UMT with audio, or set "
            '"audio_dir": null in dataset.json to leave the audio out'
        )
    return f"audio input width: expected {expected}, found {found}"


def _stream_from_json(obj: object, source: str) -> StreamSpec:
    if not isinstance(obj, dict) or set(obj) - {"name", "dim", "l2_normalize"} or "name" not in obj:
        raise InputFileError(
            f"{source}: each video stream must be {{'name', 'dim', 'l2_normalize'}}, found {obj!r:.80}"
        )
    return StreamSpec(name=obj["name"], dim=obj.get("dim"), l2_normalize=bool(obj.get("l2_normalize", True)))  # type: ignore[arg-type]
