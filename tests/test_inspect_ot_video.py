"""`readcli inspect-ot --video VIDEO --query Q`: extraction like `ground`, then the same solver."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CLIP  # noqa: E402  (tests/ is on sys.path)
from typer.testing import CliRunner

from readcli.cli import app
from readcli.errors import InvalidValueError
from readcli.features.store import save_feature_array
from readcli.pipelines.inspect_ot import InspectOTRequest

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path / "cache"))


def test_video_and_query_give_a_plan_over_the_videos_clips_and_the_querys_tokens(
    tiny_clip: Path, shared_data: Path, tmp_path: Path
) -> None:
    video = shared_data / "videos" / "book.mp4"  # 3.3 s: 2 clips
    args = ["inspect-ot", "--video", str(video), "--query", "a person opens a book", "--json",
            "--clip-model", TINY_CLIP, "--clip-weights", str(tiny_clip), "--device", "cpu"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    plan = np.array(doc["plan"])
    assert plan.shape[0] == 2 and plan.shape[1] >= 7  # clips x (SOT + 5 words + EOT) tokens
    assert plan.sum() == pytest.approx(0.5, abs=1e-4) and doc["distance"] > 0
    # the same video side from a features file gives the same plan (files and raw input agree)
    features = tmp_path / "book.npz"
    cache_files = list((tmp_path / "cache").rglob("*.npz"))
    assert cache_files, "the video's features were cached"
    save_feature_array(features, "features", np.load(cache_files[0])["features"])
    again = runner.invoke(app, ["inspect-ot", "--video-features", str(features), *args[3:]])
    assert again.exit_code == 0, again.output
    np.testing.assert_allclose(np.array(json.loads(again.stdout)["plan"]), plan, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "give the video side once"),
        ({"video": Path("a.mp4"), "video_features": Path("a.npz"), "query": "q"}, "give the video side once"),
        ({"video": Path("a.mp4")}, "give the text side once"),
        ({"video": Path("a.mp4"), "query": "q", "text_features": Path("t.npz")}, "give the text side once"),
    ],
)
def test_each_side_must_be_given_exactly_once(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        InspectOTRequest(**kwargs)  # type: ignore[arg-type]


def test_an_empty_query_is_one_line(tiny_clip: Path, shared_data: Path) -> None:
    video = str(shared_data / "videos" / "book.mp4")
    clip = ["--clip-model", TINY_CLIP, "--clip-weights", str(tiny_clip), "--device", "cpu"]
    result = runner.invoke(app, ["inspect-ot", "--video", video, "--query", "  ", *clip])
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "query" in result.stderr
