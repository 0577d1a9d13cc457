"""`readcli ground` end to end: a generated 10-minute video and real clips through the parity checkpoint.

The feature extractor is a CLIP of open_clip's architecture with random weights saved here: a tiny
one with Moment-DETR's widths for speed, and ViT-B-32 once through the CLI. The feature cache and the
digest cache live in a private folder for this module. The long video is made and extracted once (the
`long_runs` fixture).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TINY_CLIP  # noqa: E402  (tests/ is on sys.path)
from typer.testing import CliRunner

from readcli.adapters.bundle import save_bundle
from readcli.adapters.inject import adapter_parameters, inject
from readcli.adapters.settings import method_settings
from readcli.backbones.moment_detr.config import tiny_moment_detr_config
from readcli.backbones.registry import build_backbone, load_backbone, load_card, save_backbone
from readcli.cli import app
from readcli.cli.commands.ground import sparkline
from readcli.data.feature_spec import StreamSpec, VideoFeatureSpec
from readcli.errors import BundleError, InvalidValueError
from readcli.features import cache as cache_module
from readcli.features.cache import FeatureCache, cache_key
from readcli.features.clip_encoder import ClipEncoder
from readcli.inference.backbone_features import require_clip_stream, spec_from_card
from readcli.pipelines.ground import GroundRequest, GroundResult, run

ffmpeg_exe = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe
runner = CliRunner()
LONG_QUERIES = ("a coloured test pattern", "a counter ticking up")


@pytest.fixture(scope="module", autouse=True)
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Private feature and digest caches (CliRunner runs in this process, so the env reaches it)."""
    root = tmp_path_factory.mktemp("ground-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("READCLI_CACHE", str(root))
    yield root
    patch.undo()


@pytest.fixture(scope="module")
def encoder(tiny_clip: Path) -> ClipEncoder:
    return ClipEncoder.load(TINY_CLIP, str(tiny_clip), device="cpu")


def _clip_args(weights: Path) -> list[str]:
    return ["--clip-model", TINY_CLIP, "--clip-weights", str(weights), "--device", "cpu"]


@pytest.fixture(scope="module")
def parity(shared_data: Path) -> Path:
    return shared_data / "moment_detr" / "parity_model.ckpt"


def _ffmpeg(source: str, out: Path, *extra: str) -> Path:
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source, *extra,
         "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 minutes at 64x64 and 1 fps: 300 two-second clips, four times the official 75-clip window."""
    return _ffmpeg("testsrc=size=64x64:rate=1:duration=600", tmp_path_factory.mktemp("made") / "long.mp4")


@pytest.fixture(scope="module")
def one_frame(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A video shorter than one clip (one frame at 30 fps)."""
    path = tmp_path_factory.mktemp("made") / "one_frame.mp4"
    return _ffmpeg("testsrc=size=64x64:rate=30", path, "-frames:v", "1")


@pytest.fixture(scope="module")
def long_runs(long_video: Path, parity: Path, encoder: ClipEncoder) -> tuple[GroundResult, GroundResult, int]:
    """The long video grounded twice through the default cache; and how many extractions ran."""
    calls: list[object] = []
    original = cache_module.extract_videos

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(cache_module, "extract_videos", counting)
    try:
        request = GroundRequest(long_video, LONG_QUERIES, backbone=str(parity), device="cpu")
        first = run(request, encoder=encoder)
        second = run(request, encoder=encoder)
    finally:
        patch.undo()
    return first, second, len(calls)


def _check_moments(result: GroundResult, top_k: int) -> None:
    for query in result.queries:
        assert 0 < len(query.moments) <= top_k
        assert all(0.0 <= s < e <= result.duration for s, e, _ in query.moments), query.moments
        scores = [m[2] for m in query.moments]
        assert scores == sorted(scores, reverse=True)
        assert len(query.saliency) == result.n_clips and np.isfinite(query.saliency).all()


def _one_error_line(result: Any) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in result.output
    return str(lines[0])


# --- the long video ----------------------------------------------------------------------------------------


def test_long_video_grounds_in_windows_inside_the_video(
    long_runs: tuple[GroundResult, GroundResult, int],
) -> None:
    first, _, _ = long_runs
    assert first.n_clips == 300 and first.duration == pytest.approx(600.0, abs=0.5)
    assert len(first.windows) == 8 and first.windows[0] == (0, 75) and first.windows[-1] == (225, 300)
    # random CLIP weights and the parity checkpoint: the one warning says they are not the published ones
    assert not first.cache_hit and first.warnings == (first.provenance.warning,)
    assert first.provenance.published is False
    assert [q.query for q in first.queries] == list(LONG_QUERIES)
    _check_moments(first, top_k=5)
    # moments come from more than the first window: the whole video is read
    assert max(e for q in first.queries for _, e, _ in q.moments) > 150.0


def test_second_run_reads_the_cache_and_gives_the_same_answer(
    long_runs: tuple[GroundResult, GroundResult, int],
) -> None:
    first, second, extractions = long_runs
    assert extractions == 1 and second.cache_hit
    assert second.queries == first.queries


def test_cli_json_png_top_k_and_several_queries(
    long_runs: tuple[GroundResult, GroundResult, int],
    long_video: Path,
    parity: Path,
    tiny_clip: Path,
    tmp_path: Path,
) -> None:
    first, _, _ = long_runs
    png = tmp_path / "plots" / "saliency.png"
    result = runner.invoke(
        app,
        ["ground", str(long_video), LONG_QUERIES[0], "--query", LONG_QUERIES[1], "--backbone", str(parity),
         *_clip_args(tiny_clip), "--top-k", "3", "--json", "--png", str(png)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["query"] for r in rows] == list(LONG_QUERIES)
    for row, expected in zip(rows, first.queries, strict=True):
        assert set(row) == {"query", "duration", "pred_relevant_windows", "pred_saliency_scores",
                            "published_weights", "weights"}  # fmt: skip
        assert row["published_weights"] is False  # random CLIP, parity checkpoint
        assert row["duration"] == pytest.approx(first.duration)
        assert row["pred_relevant_windows"] == [list(m) for m in expected.moments[:3]]
        assert (
            row["pred_saliency_scores"] == list(expected.saliency) and len(row["pred_saliency_scores"]) == 300
        )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in png.parent.iterdir()] == ["saliency.png"]  # no temporary left behind


def test_over_long_query_is_truncated_with_a_warning_that_says_where(
    long_runs: tuple[GroundResult, GroundResult, int], long_video: Path, parity: Path, tiny_clip: Path
) -> None:
    words = " ".join(["word"] * 100)
    result = runner.invoke(
        app,
        ["ground", str(long_video), words, "--backbone", str(parity), *_clip_args(tiny_clip), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # besides it: the unpublished-weights warning and plain progress lines (stderr is not a terminal)
    (line,) = [t for t in result.stderr.splitlines() if t.startswith("warning: query")]
    assert "truncated" in line
    assert "dropped its last 25 word pieces" in line and "first 32 of 77 tokens" in line
    (row,) = json.loads(result.stdout)
    assert row["query"] == words and len(row["pred_saliency_scores"]) == 300


# --- short videos ------------------------------------------------------------------------------------------


def test_short_real_clip_with_vit_b_32_prints_a_table_and_a_sparkline(
    shared_data: Path, parity: Path, tmp_path: Path
) -> None:
    """The default CLIP model (random ViT-B-32 weights) end to end through the CLI."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    clip_weights = tmp_path / "vit-b-32-random.safetensors"
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(clip_weights))
    del model
    video = shared_data / "videos" / "book.mp4"
    result = runner.invoke(
        app,
        ["ground", str(video), "a book on a table", "--backbone", str(parity), "--clip-weights",
         str(clip_weights), "--device", "cpu", "--top-k", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "2 clips of 2 s, 1 window(s)" in out and "1. a book on a table" in out
    assert "rank" in out and "start (s)" in out and "score" in out
    spark = next(line for line in out.splitlines() if line.startswith("saliency "))
    assert len(spark) == len("saliency ") + 2 and set(spark[9:]) <= set("▁▂▃▄▅▆▇█")


def test_real_clip_and_a_video_shorter_than_one_clip(
    shared_data: Path, one_frame: Path, parity: Path, encoder: ClipEncoder
) -> None:
    for video, clips in ((shared_data / "videos" / "toby2.mp4", 2), (one_frame, 1)):
        result = run(GroundRequest(video, ("a dog",), backbone=str(parity), device="cpu"), encoder=encoder)
        assert result.n_clips == clips and result.windows == ((0, clips),)
        assert all(len(q.saliency) == clips for q in result.queries)
        assert all(0.0 <= s < e <= result.duration for q in result.queries for s, e, _ in q.moments)
    assert result.duration < 0.1  # the one-frame video


# --- refusals ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "number"), [([""], 1), (["dogs", "--query", "  "], 2)])
def test_empty_query_is_one_error_line(long_video: Path, args: list[str], number: int) -> None:
    line = _one_error_line(runner.invoke(app, ["ground", str(long_video), *args]))
    assert f"query {number} (" in line and "is empty" in line


def test_missing_video_is_one_error_line(tmp_path: Path) -> None:
    line = _one_error_line(runner.invoke(app, ["ground", str(tmp_path / "missing.mp4"), "a dog"]))
    assert "missing.mp4: video file not found" in line


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--top-k", "0"], "--top-k 0 is invalid"), (["--stride", "0"], "--stride 0 is invalid"),
     (["--nms-iou", "1.5"], "--nms-iou 1.5 is invalid")],
)  # fmt: skip
def test_bad_numbers_are_refused_before_anything_loads(
    long_video: Path, option: list[str], message: str
) -> None:
    line = _one_error_line(runner.invoke(app, ["ground", str(long_video), "dogs", *option]))
    assert message in line


def _spec_json() -> dict[str, Any]:
    return spec_from_card(load_card("moment-detr-clip")).to_json()


def test_bundle_for_another_backbone_is_refused(long_video: Path, parity: Path, tmp_path: Path) -> None:
    tiny = build_backbone(tiny_moment_detr_config())
    inject(tiny, method_settings("read", bottleneck=4))
    save_bundle(tiny, tmp_path / "tiny", backbone_name="tiny", task="tlg", extra_config={"feature_spec": {}})
    result = runner.invoke(
        app,
        ["ground", str(long_video), "dogs", "--backbone", str(parity), "--adapter", str(tmp_path / "tiny")],
    )
    line = _one_error_line(result)
    assert "made for another moment_detr" in line and "hidden_dim: bundle '32', model '256'" in line


def test_bundle_on_its_backbone_changes_the_answer_and_one_without_a_spec_is_refused(
    shared_data: Path, parity: Path, encoder: ClipEncoder, tmp_path: Path
) -> None:
    model = load_backbone(parity)
    inject(model, method_settings("read", bottleneck=4))
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in adapter_parameters(model).values():
            parameter.normal_(0, 0.2)  # a trained-looking adapter: W_up no longer zero
    save_bundle(model, tmp_path / "good", backbone_name="parity", task="tlg",
                extra_config={"feature_spec": _spec_json()})  # fmt: skip
    save_bundle(model, tmp_path / "nospec", backbone_name="parity", task="tlg")
    video = shared_data / "videos" / "toby2.mp4"
    plain = run(GroundRequest(video, ("a dog",), backbone=str(parity), device="cpu"), encoder=encoder)
    adapted = run(
        GroundRequest(video, ("a dog",), backbone=str(parity), adapter=tmp_path / "good", device="cpu"),
        encoder=encoder,
    )
    assert adapted.queries[0].saliency != plain.queries[0].saliency
    with pytest.raises(BundleError, match="records no feature spec"):
        run(
            GroundRequest(video, ("a dog",), backbone=str(parity), adapter=tmp_path / "nospec", device="cpu"),
            encoder=encoder,
        )


def test_checkpoint_for_other_features_needs_a_bundle(long_video: Path, tmp_path: Path) -> None:
    save_backbone(build_backbone(tiny_moment_detr_config()), tmp_path / "tiny")
    request = GroundRequest(long_video, ("dogs",), backbone=str(tmp_path / "tiny"), device="cpu")
    with pytest.raises(
        InvalidValueError, match=r"video input width: expected 18, found 514 .*pass --adapter"
    ):
        run(request)


# --- feature spec and cache ---------------------------------------------------------------------------


def test_the_preset_card_gives_the_released_model_s_features() -> None:
    spec = spec_from_card(load_card("moment-detr-clip"))
    assert spec == VideoFeatureSpec(
        streams=(StreamSpec("clip_image_features", 512, l2_normalize=True),),
        text_dim=512,
        tef=True,
        clip_len=2.0,
        max_v_l=75,
        max_q_l=32,
        normalize_text=True,
    )
    assert spec.video_dim == 514


def test_a_spec_with_streams_ground_cannot_extract_is_refused() -> None:
    two = VideoFeatureSpec(streams=(StreamSpec("slowfast", 2304), StreamSpec("clip", 512)), text_dim=512)
    with pytest.raises(InvalidValueError, match=r"one CLIP image stream .*\[slowfast:2304, clip:512\]"):
        require_clip_stream(two, image_dim=512, text_dim=512, clip_model="ViT-B-32")


def test_cache_is_keyed_by_content_and_settings_and_repairs_a_bad_entry(
    one_frame: Path, encoder: ClipEncoder, tmp_path: Path
) -> None:
    cache = FeatureCache(tmp_path / "features")
    first = cache.get(one_frame, encoder, clip_len=2.0)
    copy = tmp_path / "renamed.mp4"
    shutil.copy(one_frame, copy)
    again = cache.get(copy, encoder, clip_len=2.0)  # same content elsewhere: a hit
    assert not first.hit and again.hit and again.key == first.key
    np.testing.assert_array_equal(again.features, first.features)
    assert cache_key("0" * 64, encoder.spec, 1.0) != cache_key("0" * 64, encoder.spec, 2.0)
    assert cache_key("0" * 64, encoder.spec, 2.0) != cache_key("1" * 64, encoder.spec, 2.0)
    npz, meta = cache.paths(first.key)
    assert json.loads(meta.read_text())["cache_key"] == first.key
    np.savez(npz, features=np.zeros_like(first.features))  # an entry its metadata does not vouch for
    repaired = cache.get(one_frame, encoder, clip_len=2.0)
    assert not repaired.hit
    np.testing.assert_array_equal(repaired.features, first.features)
    assert cache.get(one_frame, encoder, clip_len=2.0).hit


# --- the sparkline -----------------------------------------------------------------------------------------


def test_sparkline_maps_min_to_lowest_and_max_to_highest_block() -> None:
    assert sparkline([0.0, 1.0, 0.5], 80) == "▁█▅"
    assert sparkline([2.0, 2.0], 80) == "▄▄"
    assert sparkline([], 80) == ""


def test_sparkline_is_resampled_to_the_width_by_bin_means() -> None:
    values = [0.0] * 50 + [1.0] * 50
    line = sparkline(values, 10)
    assert line == "▁" * 5 + "█" * 5
    assert len(sparkline(list(range(1000)), 37)) == 37
