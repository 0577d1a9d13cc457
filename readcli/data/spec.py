"""What a model's video and text inputs are made of: the feature spec recorded in every bundle.

Several video feature streams (e.g. SlowFast and CLIP) are concatenated per clip in a declared order.
Two popular toolkits use opposite orders, and a model fed the other order runs without error and
predicts nonsense, so the order is part of the spec and `require_compatible` checks it on load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from readcli.errors import InputFileError, InvalidValueError, choices_text

SPEC_FORMAT = 1
TEF_DIM = 2  # the temporal endpoint feature [start/L, end/L] appended to every clip


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

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SPEC_FORMAT,
            "video_streams": [
                {"name": s.name, "dim": s.dim, "l2_normalize": s.l2_normalize} for s in self.streams
            ],
            "tef": self.tef,
            "clip_len": self.clip_len,
            "max_v_l": self.max_v_l,
            "max_q_l": self.max_q_l,
            "text_dim": self.text_dim,
            "normalize_text": self.normalize_text,
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
            return cls(
                streams=streams,
                text_dim=obj["text_dim"],
                tef=bool(obj.get("tef", True)),
                clip_len=obj.get("clip_len", 2.0),
                max_v_l=obj.get("max_v_l", 75),
                max_q_l=obj.get("max_q_l", 32),
                normalize_text=bool(obj.get("normalize_text", True)),
            )
        except InvalidValueError as err:
            raise InputFileError(f"{source}: {err}") from None

    def require_compatible(
        self, other: VideoFeatureSpec, *, ours: str = "bundle", theirs: str = "data"
    ) -> None:
        """Refuse features that would mean something else to a model trained on `self`.

        Stream order, widths, normalisation, TEF, clip length and text width must agree; max lengths
        may differ (they only bound how much of a video is read).
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
        if problems:
            raise InvalidValueError("feature spec mismatch: " + "; ".join(problems))

    def require_input_dims(self, *, video_dim: int, text_dim: int, model: str = "the backbone") -> None:
        """Refuse features whose widths differ from what `model` takes (expected vs found)."""
        problems = []
        if self.video_dim != video_dim:
            parts = " + ".join(f"{s.dim} ({s.name})" for s in self.streams) + (
                f" + {TEF_DIM} (TEF)" if self.tef else ""
            )
            problems.append(f"video input width: expected {video_dim}, found {self.video_dim} = {parts}")
        if self.text_dim != text_dim:
            problems.append(f"text input width: expected {text_dim}, found {self.text_dim}")
        if problems:
            raise InvalidValueError(f"features do not fit {model}: " + "; ".join(problems))


def _stream_from_json(obj: object, source: str) -> StreamSpec:
    if not isinstance(obj, dict) or set(obj) - {"name", "dim", "l2_normalize"} or "name" not in obj:
        raise InputFileError(
            f"{source}: each video stream must be {{'name', 'dim', 'l2_normalize'}}, found {obj!r:.80}"
        )
    return StreamSpec(name=obj["name"], dim=obj.get("dim"), l2_normalize=bool(obj.get("l2_normalize", True)))  # type: ignore[arg-type]
