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

from readcli.data.annotations import MomentAnnotation, rectangular_means
from readcli.data.jsonl import JsonRow, is_number
from readcli.errors import InvalidValueError, choices_text

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
    domain = str(row.identifier("domain"))
    if row.has("match"):
        match = _numbers(row, "match")
    else:  # `label` ([[0/1] per clip]) carries the same information in these files
        match = [_single(row, "label", i, v) for i, v in enumerate(row.list_of("label"))]
    if not match:
        raise row.fail("'match' has no clips")
    if row.has("clip") and len(row.list_of("clip")) != len(match):
        raise row.fail(f"'clip' lists {len(row.list_of('clip'))} clips but 'match' has {len(match)}")
    if row.has("duration"):
        duration = row.number("duration", positive=True)
    else:
        duration = row.number("frames", positive=True) / row.number("fps", positive=True)
    scores = tuple(1.0 if m > 0 else 0.0 for m in match)
    return MomentAnnotation(
        qid=row.identifier("qid"),
        vid=str(row.identifier("vid")),
        query=row.text("query") if row.has("query") else domain,
        duration=duration,
        format="youtube_highlights",
        source=row.where,
        windows=(),
        clip_ids=tuple(range(len(match))),
        clip_scores=scores,
        relevant_ids=tuple(i for i, s in enumerate(scores) if s > 0),
        num_clips=len(match),
        domain=domain,
    )


def parse_tvsum_row(row: JsonRow) -> MomentAnnotation:
    """A TVSum row: per 2-second clip, the mean of the annotators' scores; relevant = above the median."""
    per_clip = row.list_of("label")
    if not per_clip:
        raise row.fail("'label' has no clips")
    fast = rectangular_means(per_clip)
    means = list(fast) if fast is not None else _checked_means(row, per_clip)
    median = statistics.median(means)
    return MomentAnnotation(
        qid=row.identifier("qid"),
        vid=str(row.identifier("vid")),
        query=row.text("query"),
        duration=len(means) * TVSUM_CLIP_SECONDS,
        format="tvsum",
        source=row.where,
        windows=(),
        clip_ids=tuple(range(len(means))),
        clip_scores=tuple(means),
        relevant_ids=tuple(i for i, m in enumerate(means) if m > median),
        num_clips=len(means),
        domain=str(row.identifier("domain")),
    )


def _checked_means(row: JsonRow, per_clip: list[object]) -> list[float]:
    """Per clip, the annotators' mean, refusing anything but equal-length lists of numbers."""
    means: list[float] = []
    width = None
    for index, scores in enumerate(per_clip):
        if not isinstance(scores, list) or not scores or not all(is_number(s) for s in scores):
            raise row.fail(f"label[{index}] must be a list of annotator scores, found {scores!r:.60}")
        if width is not None and len(scores) != width:
            raise row.fail(f"label[{index}] has {len(scores)} annotator scores, label[0] has {width}")
        width = len(scores)
        means.append(float(sum(scores)) / len(scores))
    return means


def _numbers(row: JsonRow, name: str) -> list[float]:
    values = row.list_of(name)
    for index, value in enumerate(values):
        if not is_number(value):
            raise row.fail(f"{name}[{index}] must be a number, found {value!r:.40}")
    return [float(v) for v in values]


def _single(row: JsonRow, name: str, index: int, value: object) -> float:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not is_number(value):
        raise row.fail(f"{name}[{index}] must be a number or [number], found {value!r:.40}")
    return float(value)


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
