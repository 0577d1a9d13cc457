"""YouTube Highlights and TVSum in the jsonl layout of recent highlight-detection toolkits.

YouTube Highlights row: `qid, vid, query (the domain), duration, domain, fps, frames, clip
([start_frame, end_frame] per annotated clip), match (per clip: 1 highlight, 0 not, -1 not a
highlight segment either)`. Target: `match > 0` (UMT's binary saliency), one feature row per clip of
the `clip` list. TVSum row: `qid, vid, query (the title), duration, domain, label (per 2-second clip,
the 20 annotators' 1..5 scores)`. Target: the annotators' mean per clip. In the released files
TVSum's `duration` equals the number of clips, so seconds are taken as clips x 2 s.
Both are trained and evaluated per domain: `select_domain` keeps one.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from readcli.data.annotation_jsonl import JsonRow
from readcli.data.annotations import MomentAnnotation
from readcli.errors import InvalidValueError, choices_text
from readcli.records import validate
from readcli.records.schemas_annotations import TVSumRow, YouTubeRow

TVSUM_CLIP_SECONDS = 2.0

# the short names UMT's config files use for the YouTube Highlights domains
DOMAIN_ALIASES: dict[str, str] = {
    "gym": "gymnastics",
    "par": "parkour",
    "ska": "skating",
    "ski": "skiing",
    "sur": "surfing",
}


def parse_youtube_row(row: JsonRow) -> MomentAnnotation:
    """A YouTube Highlights row: binary per-clip target `match > 0` over the annotated clips."""
    record = validate(YouTubeRow, row.data, row.where)
    domain = str(record.domain)
    scores = tuple(record.targets())
    duration = record.seconds()
    if duration is None:
        raise row.fail("give 'duration', or 'frames' and 'fps'")
    return MomentAnnotation(
        qid=record.qid,
        vid=_required(row, "vid", record.vid),
        query=record.query if record.query is not None else domain,
        duration=duration,
        format="youtube_highlights",
        source=row.where,
        windows=(),
        clip_ids=tuple(range(len(scores))),
        clip_scores=scores,
        relevant_ids=tuple(i for i, s in enumerate(scores) if s > 0),
        num_clips=len(scores),
        domain=domain,
    )


def parse_tvsum_row(row: JsonRow) -> MomentAnnotation:
    """A TVSum row: per 2-second clip, the mean of the annotators' scores; relevant = above the median."""
    record = validate(TVSumRow, row.data, row.where)
    means = [float(sum(scores)) / len(scores) for scores in record.label]
    median = statistics.median(means)
    return MomentAnnotation(
        qid=record.qid,
        vid=_required(row, "vid", record.vid),
        query=_required(row, "query", record.query),
        duration=len(means) * TVSUM_CLIP_SECONDS,
        format="tvsum",
        source=row.where,
        windows=(),
        clip_ids=tuple(range(len(means))),
        clip_scores=tuple(means),
        relevant_ids=tuple(i for i, m in enumerate(means) if m > median),
        num_clips=len(means),
        domain=str(record.domain),
    )


def _required(row: JsonRow, name: str, value: int | str | None) -> str:
    if value is None:
        raise row.fail(f"missing field {name!r}")
    return str(value)


def domains(annotations: Sequence[MomentAnnotation]) -> list[str]:
    """The domains present, sorted."""
    return sorted({a.domain for a in annotations if a.domain is not None})


def resolve_domain(name: str, available: Sequence[str]) -> str:
    """Match a domain name case-insensitively (UMT's short names accepted); the miss lists the choices."""
    by_lower = {d.lower(): d for d in available}
    wanted = name.strip().lower()
    wanted = DOMAIN_ALIASES.get(wanted, wanted)
    if wanted in by_lower:
        return by_lower[wanted]
    raise InvalidValueError(f"unknown domain {name!r}; available: {choices_text(sorted(available))}")


def select_domain(annotations: Sequence[MomentAnnotation], name: str) -> list[MomentAnnotation]:
    """The rows of one domain (e.g. YouTube `skiing`, TVSum `BK`), in file order."""
    domain = resolve_domain(name, domains(annotations))
    return [a for a in annotations if a.domain == domain]


def split_by_domain(annotations: Sequence[MomentAnnotation]) -> dict[str, list[MomentAnnotation]]:
    """All rows grouped by domain, domains sorted, rows in file order."""
    return {d: [a for a in annotations if a.domain == d] for d in domains(annotations)}
