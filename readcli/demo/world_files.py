"""Write the demo's grounding worlds as dataset directories (docs/data.md layout), once, atomically.

Each domain is one directory with `video_features/clip/*.npz`, `text_features/qid*.npz`, split files
and a `dataset.json` that declares them, so the demo loads them with `load_grounding_split` like a
user's data. Source: `train` (pretraining) and `val` (the held-out mastery check). Each target
world: `train` (the labelled pool minus dev, which the low-resource subsets are drawn from), `dev`
(carved from the same labelled pool, for learning-rate selection) and `test` (never read before
the choice is made; docs/demo.md).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from readcli.data.subset import select_subset
from readcli.demo.world import (
    DOMAINS,
    WorldConfig,
    domain_layout,
    domain_look,
    plan_video,
    query_row,
    query_text,
    query_words,
    render_query,
    render_video,
    vocabulary,
)
from readcli.errors import InvalidValueError

PARTS: tuple[str, ...] = ("train", "val", "pool", "test")


def _videos(config: WorldConfig, domain: str, part: str, count: int, all_events: bool) -> list[tuple]:
    """(vid, features, [(x, token ids)]) for `count` videos of one part of a domain."""
    look, layout = domain_look(config, domain), domain_layout(config, domain)
    words = vocabulary(config)
    rng = np.random.default_rng([config.seed, 3, DOMAINS.index(domain), PARTS.index(part)])
    out = []
    for v in range(count):
        x = int(rng.integers(0, config.num_events))
        plan = plan_video(rng, config, layout, x)
        features = render_video(rng, look, plan)  # (N_V, D_v)
        targets = [run[0] for run in plan.runs] if all_events else [x]
        queries = []
        for event in targets:
            ids = query_words(rng, config, event, layout.fillers)
            queries.append((event, ids, render_query(rng, words, ids, config.word_noise)))
        out.append((f"{domain}_{part}_{v:05d}", features, plan, queries))
    return out


def _write_part(config: WorldConfig, root: Path, videos: list[tuple], first_qid: int) -> list[dict[str, Any]]:
    rows = []
    qid = first_qid
    for vid, features, plan, queries in videos:
        np.savez(root / "video_features" / "clip" / f"{vid}.npz", features=features)
        for event, ids, tokens in queries:
            np.savez(root / "text_features" / f"qid{qid}.npz", last_hidden_state=tokens)
            rows.append(query_row(qid, vid, plan, event, query_text(config, ids), config.clip_len))
            qid += 1
    return rows


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def write_domain(config: WorldConfig, domain: str, root: Path) -> None:
    """Write one domain as a grounding dataset directory under `root`."""
    if domain not in DOMAINS:
        raise InvalidValueError(f"unknown demo world {domain!r}: choose one of {', '.join(DOMAINS)}")
    (root / "video_features" / "clip").mkdir(parents=True)
    (root / "text_features").mkdir()
    if domain == "source":
        train = _write_part(config, root, _videos(config, domain, "train", config.source_videos, True), 0)
        val = _write_part(
            config, root, _videos(config, domain, "val", config.source_val_videos, False), 10**6
        )
        splits = {"train": train, "val": val}
    else:
        pool = _write_part(config, root, _videos(config, domain, "pool", config.pool_videos, False), 0)
        test = _write_part(config, root, _videos(config, domain, "test", config.test_videos, False), 10**6)
        dev_ids = {row["qid"] for row in select_subset_rows(pool, config.dev_queries)}
        splits = {
            "train": [row for row in pool if row["qid"] not in dev_ids],
            "dev": [row for row in pool if row["qid"] in dev_ids],
            "test": test,
        }
    for name, rows in splits.items():
        _write_jsonl(root / f"{name}.jsonl", rows)
    # no "splits" map: the layout finds train/dev/test by name, and a missing test.jsonl is no error
    manifest = {"format": "qvhighlights", "clip_len": config.clip_len}
    (root / "dataset.json").write_text(json.dumps(manifest), encoding="utf-8")


class _Keyed:
    def __init__(self, row: dict[str, Any]) -> None:
        self.row, self.key = row, str(row["qid"])


def select_subset_rows(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The dev carve-out: `select_subset`'s hash order (seed -1, no training seed uses it)."""
    return [k.row for k in select_subset([_Keyed(r) for r in rows], n, -1)]


def ensure_worlds(config: WorldConfig, directory: Path) -> tuple[Path, bool]:
    """`directory` holding one dataset per domain, written once (atomically); True if reused."""
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
