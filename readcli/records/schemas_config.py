"""Schemas of the configuration records readcli reads: dataset.json, extract --queries rows, bundles.

Configuration is strict: unknown keys are errors (a typo must not be ignored), booleans are JSON
true/false (never "yes" or 1), numbers are bounded where they size an allocation.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, Strict

from readcli.records.validate import MAX_CLIPS, Flag, Id, PlainName, Record, Text

# Widths of feature rows and model layers: far above any real model (CLIP 512, I3D 2048, ViT-H 1280),
# far below what would exhaust memory in one allocation.
MAX_WIDTH = 65_536
Width = Annotated[int, Strict(), Field(ge=1, le=MAX_WIDTH)]
Rows = Annotated[int, Strict(), Field(ge=1, le=MAX_CLIPS)]
ClipSeconds = Annotated[float, Strict(), Field(gt=0, le=3600)]
NonEmptyText = Annotated[str, Strict(), Field(min_length=1, max_length=4096)]


class StreamEntry(Record):
    """One `video_streams` entry written as an object."""

    name: PlainName
    dim: Width | None = None
    l2_normalize: Flag | None = None


class DatasetManifest(Record):
    """`DIR/dataset.json` (docs/data.md): every key optional, unknown keys refused."""

    format: Literal["qvhighlights", "youtube_highlights", "tvsum"] | None = None
    video_streams: list[PlainName | StreamEntry] | None = Field(default=None, max_length=64)
    video_dirs: dict[PlainName, NonEmptyText] | None = None
    text_dir: NonEmptyText | None = None
    text_key: NonEmptyText | None = None
    audio_dir: NonEmptyText | None = None
    splits: dict[Literal["train", "val", "test"], NonEmptyText] | None = None
    clip_len: ClipSeconds | None = None
    tef: Flag | None = None
    normalize_text: Flag | None = None
    normalize_video: Flag | None = None
    normalize_audio: Flag | None = None
    text_dim: Width | None = None
    max_v_l: Rows | None = None
    max_q_l: Rows | None = None

    def as_dict(self) -> dict[str, Any]:
        """The keys the file sets (an explicit null stays), entries as plain names or dicts."""
        return self.model_dump(exclude_unset=True)


class QueryRow(Record):
    """One `extract --queries` row: `qid` names the output file `qid{qid}.npz`; other fields ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    qid: Id
    query: Text


Digest = Annotated[str, Strict(), Field(pattern=r"^[0-9a-f]{64}$")]


class BundleBackbone(Record):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text
    architecture: Text
    fingerprint: Text
    extra: dict[str, Any] = {}


class BundleWeights(Record):
    file: Text | None = None
    blake2b: Digest
    bytes: Annotated[int, Strict(), Field(ge=0, le=2**40)]


class BundleRecord(Record):
    """`adapter_config.json` of an adapter bundle; `method` is checked by MethodSettings."""

    format: Literal["readcli-adapter-bundle"]
    format_version: Literal[1]
    readcli_version: Text | None = None
    method: dict[str, Any]
    task: Text
    backbone: BundleBackbone
    extra: dict[str, Any] | None = None
    weights: BundleWeights
    parameters: dict[str, Any] | None = None


class CardWeights(Record):
    """A preset card's `weights`: where the file comes from and what it must hash to."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: Text
    file_name: PlainName  # joined to the cache folder: never a path
    env_var: Annotated[str, Strict(), Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
    source: dict[str, Any]
    sha256: Annotated[str, Strict(), Field(pattern=r"^[0-9a-f]{64}$")] | None = None


class PresetCardRecord(Record):
    """`models/<name>.json` (docs/backbones.md): the fields readcli acts on; notes are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    card_version: Literal[1]
    name: PlainName  # names the preset's cache folder
    architecture: Text
    configuration: dict[str, Any]
    weights: CardWeights


class ShardItem(Record):
    kind: Literal["video", "query"]
    name: PlainName
    status: Literal["done", "skipped", "failed"]
    reason: Text | None = None


class ShardManifestRecord(Record):
    """`OUT/shards/shard-I-of-N.json`, written by `extract --shard` (docs/distributed.md)."""

    format: Literal[1]
    shard: Annotated[str, Strict(), Field(pattern=r"^\d{1,6}/\d{1,6}$")]
    encoder: dict[str, Any]
    videos: list[PlainName]
    queries: list[PlainName]
    items: list[ShardItem]
