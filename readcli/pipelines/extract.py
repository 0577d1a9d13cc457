"""`readcli extract`: CLIP features for videos (and queries) into a folder, resumable and shardable.

A typed request in, a typed result out: one outcome per video or query (done, skipped because the
folder already holds current features, or failed with a one-line reason). Progress goes through a
callback; nothing is printed. See docs/features.md for the file layout and every rule used here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from readcli.errors import InputFileError, InvalidValueError, ReadcliError
from readcli.features.clip_encoder import DEFAULT_MODEL, ClipEncoder, EncoderSpec
from readcli.features.clips import check_clip_len
from readcli.features.extractor import VideoFailed, extract_videos
from readcli.features.manifest import ManifestItem, ShardManifest, write_manifest
from readcli.features.metadata import is_current, query_metadata, settings, video_metadata
from readcli.features.queries import Query, read_queries
from readcli.features.sources import Shard, Source, collect_sources, parse_shard, take_shard
from readcli.features.store import TEXT_KEY, VIDEO_KEY, save_feature_array
from readcli.fileio import atomic_write_json, check_output_dir
from readcli.options.features import FRAMES_BATCH

log = logging.getLogger(__name__)

Status = Literal["done", "skipped", "failed"]
QUERY_BATCH = 64


@dataclass(frozen=True)
class ExtractRequest:
    paths: tuple[str, ...]
    out_dir: Path
    clip_model: str = DEFAULT_MODEL
    clip_weights: str = "openai"
    clip_len: float = 2.0
    batch_size: int = FRAMES_BATCH.default
    device: str = "auto"
    shard: str | None = None  # "I/N", I counted from 0
    queries: Path | None = None  # a jsonl with qid and query per row


@dataclass(frozen=True)
class Outcome:
    kind: Literal["video", "query"]
    name: str  # the feature file's stem: the video's stem, or qid{qid}
    source: str
    status: Status
    reason: str | None = None
    rows: int | None = None  # clips of a video, tokens of a query
    seconds: float | None = None


@dataclass(frozen=True)
class ExtractResult:
    out_dir: Path
    encoder: EncoderSpec
    shard: Shard | None
    outcomes: tuple[Outcome, ...]
    seconds: float

    def count(self, status: Status) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0


@dataclass(frozen=True)
class Planned:
    """Sent once: how many items will be worked on (after resume) and how many are skipped."""

    todo: int
    skipped: int
    failed_early: int


@dataclass(frozen=True)
class ItemProgress:
    """Sent as an item advances: `done` of `total` clips (videos) or tokens batches (queries)."""

    kind: Literal["video", "query"]
    name: str
    done: int
    total: int


@dataclass(frozen=True)
class ItemFinished:
    outcome: Outcome


ProgressEvent = Planned | ItemProgress | ItemFinished
ProgressCallback = Callable[[ProgressEvent], None]


@dataclass
class _Run:
    request: ExtractRequest
    progress: ProgressCallback
    outcomes: list[Outcome] = field(default_factory=list)

    def finish(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.progress(ItemFinished(outcome))


def _validate(request: ExtractRequest) -> Shard | None:
    if not request.paths and request.queries is None:
        raise InvalidValueError("nothing to extract: give video PATHs, --queries FILE, or both")
    FRAMES_BATCH.validate(request.batch_size)
    check_clip_len(request.clip_len)
    check_output_dir(request.out_dir, "--out")  # a file, or not writable: refused before CLIP loads
    return parse_shard(request.shard)


def _check_out_creatable(out: Path) -> None:
    existing = Path(os.path.abspath(out))
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputFileError(f"--out {out}: cannot create the folder ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputFileError(f"--out {out}: cannot create the folder (permission denied in {existing})")


def _video_plan(run: _Run, spec: EncoderSpec, sources: list[Source]) -> list[Source]:
    """Report collisions and current features; return the sources still to extract."""
    wanted = settings(spec, kind="video", clip_len=run.request.clip_len)
    todo = []
    for source in sources:
        out = run.request.out_dir / source.name
        if source.problem is not None:
            run.finish(Outcome("video", source.name, str(source.path), "failed", source.problem))
        elif source.path.is_file() and is_current(
            out.with_suffix(".json"), out.with_suffix(".npz"), VIDEO_KEY, wanted, source=source.path
        ):
            run.finish(Outcome("video", source.name, str(source.path), "skipped", "features are current"))
        else:
            todo.append(source)
    return todo


def _extract_videos(run: _Run, encoder: ClipEncoder, todo: list[Source]) -> None:
    started: dict[int, float] = {}

    def on_progress(index: int, done: int, total: int) -> None:
        started.setdefault(index, time.perf_counter())
        run.progress(ItemProgress("video", todo[index].name, done, total))

    request = run.request
    for item in extract_videos(
        [s.path for s in todo],
        encoder,
        clip_len=request.clip_len,
        batch_size=request.batch_size,
        progress=on_progress,
    ):
        source = todo[item.index]
        began = started.get(item.index)
        seconds = None if began is None else time.perf_counter() - began
        if isinstance(item, VideoFailed):
            run.finish(
                Outcome("video", source.name, str(source.path), "failed", item.reason, seconds=seconds)
            )
            continue
        out = request.out_dir / source.name
        try:  # the array first, then the metadata that vouches for it
            save_feature_array(out.with_suffix(".npz"), VIDEO_KEY, item.features)
            atomic_write_json(
                out.with_suffix(".json"), video_metadata(encoder.spec, item.plan, source.path, item.features)
            )
        except (OSError, InputFileError) as err:
            run.finish(
                Outcome("video", source.name, str(source.path), "failed", f"cannot write features: {err}")
            )
            continue
        run.finish(
            Outcome("video", source.name, str(source.path), "done", rows=item.plan.n_clips, seconds=seconds)
        )


def _query_plan(run: _Run, spec: EncoderSpec, queries: list[Query]) -> list[Query]:
    wanted = settings(spec, kind="text")
    todo = []
    for query in queries:
        out = run.request.out_dir / query.file_stem
        if is_current(out.with_suffix(".json"), out.with_suffix(".npz"), TEXT_KEY, wanted, query=query.text):
            run.finish(
                Outcome("query", query.file_stem, str(run.request.queries), "skipped", "features are current")
            )
        else:
            todo.append(query)
    return todo


def _write_query(run: _Run, spec: EncoderSpec, query: Query, features: np.ndarray, dropped: int) -> None:
    out, source = run.request.out_dir / query.file_stem, str(run.request.queries)
    try:
        save_feature_array(out.with_suffix(".npz"), TEXT_KEY, features)
        atomic_write_json(
            out.with_suffix(".json"), query_metadata(spec, query.qid, query.text, features, dropped)
        )
    except (OSError, InputFileError) as err:
        run.finish(Outcome("query", query.file_stem, source, "failed", f"cannot write features: {err}"))
        return
    reason = f"truncated: dropped {dropped} word pieces past CLIP's context" if dropped else None
    run.finish(Outcome("query", query.file_stem, source, "done", reason, rows=len(features)))


def _extract_queries(run: _Run, encoder: ClipEncoder, todo: list[Query]) -> None:
    source = str(run.request.queries)
    for start in range(0, len(todo), QUERY_BATCH):
        batch = []
        for query in todo[start : start + QUERY_BATCH]:
            try:
                batch.append((query, encoder.tokenize_query(query.text)[1]))
            except ReadcliError as err:
                run.finish(Outcome("query", query.file_stem, source, "failed", f"qid {query.qid}: {err}"))
        states = encoder.encode_queries([q.text for q, _ in batch]) if batch else []
        for (query, dropped), array in zip(batch, states, strict=True):
            _write_query(run, encoder.spec, query, array.numpy(), dropped)  # (N, W)
        run.progress(ItemProgress("query", "queries", min(start + QUERY_BATCH, len(todo)), len(todo)))


def run(
    request: ExtractRequest, progress: ProgressCallback | None = None, *, encoder: ClipEncoder | None = None
) -> ExtractResult:
    """Extract features for every input of `request` into `request.out_dir`; failures do not stop the rest.

    `encoder`: a ClipEncoder already loaded (a long-lived process, tests); then the request's
    clip_model, clip_weights and device are not used, and the encoder's spec is what is recorded.
    """
    began = time.perf_counter()
    shard = _validate(request)
    all_sources, arg_problems = collect_sources(list(request.paths))
    sources = take_shard(all_sources, shard)
    all_queries = read_queries(request.queries) if request.queries is not None else []
    if not all_sources and not all_queries:  # before loading CLIP or creating --out: nothing to do
        raise InputFileError(f"nothing to extract: {'; '.join(arg_problems)}; give video files or folders")
    queries = all_queries if shard is None else all_queries[shard.index :: shard.count]
    if encoder is None:
        encoder = ClipEncoder.load(request.clip_model, request.clip_weights, device=request.device)
    # --out is created by the first file written (readcli.fileio), so a run whose every input fails
    # (e.g. a truncated video) leaves no empty --out behind; here only whether it can be created
    _check_out_creatable(request.out_dir)
    state = _Run(request, progress or (lambda event: None))
    for problem in arg_problems:
        arg = problem.split(": ", 1)[0]
        state.finish(Outcome("video", Path(arg).name, arg, "failed", problem))
    todo_videos = _video_plan(state, encoder.spec, sources)
    todo_queries = _query_plan(state, encoder.spec, queries)
    state.progress(
        Planned(
            todo=len(todo_videos) + len(todo_queries),
            skipped=sum(o.status == "skipped" for o in state.outcomes),
            failed_early=sum(o.status == "failed" for o in state.outcomes),
        )
    )
    _extract_videos(state, encoder, todo_videos)
    _extract_queries(state, encoder, todo_queries)
    if shard is not None:  # what `extract-merge` checks: the full input list and this shard's outcomes
        write_manifest(
            ShardManifest(
                request.out_dir, shard.index, shard.count,
                {**asdict(encoder.spec), "clip_len": request.clip_len},
                tuple(s.name for s in all_sources), tuple(q.file_stem for q in all_queries),
                tuple(ManifestItem(o.kind, o.name, o.status, o.reason) for o in state.outcomes),
            )
        )  # fmt: skip
    return ExtractResult(
        request.out_dir, encoder.spec, shard, tuple(state.outcomes), time.perf_counter() - began
    )
