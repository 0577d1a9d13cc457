"""`readcli extract` end to end: CLIP ViT-B-32 with random weights saved here, real clips, bad files.

Also the encoder's contracts: token states match open_clip's own text path, images match open_clip's
preprocessing and encode_image, empty and over-long queries.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from readcli.cli import app
from readcli.cli.progress import PROGRESS_LINE
from readcli.errors import InputFileError, InvalidValueError
from readcli.features.clip_encoder import ClipEncoder
from readcli.features.metadata import array_sha256
from readcli.features.store import load_feature_array
from readcli.features.weights import file_sha256
from readcli.pipelines.extract import ExtractRequest, ItemFinished, Planned, run

ffmpeg_exe = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe
runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A private digest cache for this module (CliRunner runs in this process, so the env reaches it)."""
    previous = os.environ.get("READCLI_CACHE")
    os.environ["READCLI_CACHE"] = str(tmp_path_factory.mktemp("readcli-cache"))
    yield
    if previous is None:
        os.environ.pop("READCLI_CACHE", None)
    else:
        os.environ["READCLI_CACHE"] = previous


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random ViT-B-32 weights in a local file (float16 safetensors: half the bytes to write and hash)."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    path = tmp_path_factory.mktemp("weights") / "vit-b-32-random.safetensors"
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def encoder(clip_weights: Path) -> ClipEncoder:
    return ClipEncoder.load("ViT-B-32", str(clip_weights), device="cpu")


@pytest.fixture(scope="module")
def one_frame(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("made") / "one_frame.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "testsrc=size=320x240:rate=30", "-frames:v", "1", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def _request(paths: Sequence[Path | str], out: Path, **kw: object) -> ExtractRequest:
    return ExtractRequest(paths=tuple(str(p) for p in paths), out_dir=out, device="cpu", **kw)  # type: ignore[arg-type]


# --- the encoder ------------------------------------------------------------------------------------------


def test_token_states_are_ln_final_for_sot_to_eot_and_match_open_clip(encoder: ClipEncoder) -> None:
    query = "A dog runs along the beach at sunset."
    states = encoder.encode_query(query)
    tokens = encoder.tokenizer([query])  # (1, 77), open_clip's own tokenisation
    n_valid = int((tokens != 0).sum())
    assert states.shape == (n_valid, 512) and states.dtype == torch.float32
    with torch.no_grad():
        pooled = encoder.model.encode_text(tokens)[0]  # (D,) projected EOT state
    assert torch.allclose(states[-1] @ encoder.model.text_projection, pooled, atol=1e-5)
    assert not torch.allclose(states[0], states[-1])


def test_batched_queries_equal_one_at_a_time(encoder: ClipEncoder) -> None:
    queries = ["short", "a much longer query about a man who cooks pasta in a small kitchen"]
    batched = encoder.encode_queries(queries)
    for query, states in zip(queries, batched, strict=True):
        assert torch.allclose(states, encoder.encode_query(query), atol=1e-5)


@pytest.mark.parametrize("query", ["", "   \n\t"])
def test_empty_query_is_refused(encoder: ClipEncoder, query: str) -> None:
    with pytest.raises(InvalidValueError, match="empty"):
        encoder.encode_query(query)


def test_query_over_77_tokens_is_truncated_with_a_warning(
    encoder: ClipEncoder, caplog: pytest.LogCaptureFixture
) -> None:
    words = " ".join(["word"] * 100)
    with caplog.at_level("WARNING", logger="readcli.features.clip_encoder"):
        states = encoder.encode_query(words)
    assert states.shape == (77, 512)
    assert "dropped its last 25 word pieces" in caplog.text
    assert encoder.tokenize_query(words)[1] == 25


def test_weights_for_another_model_are_named_as_not_fitting(tmp_path: Path) -> None:
    path = tmp_path / "small.pt"
    torch.save({"visual.conv1.weight": torch.zeros(8, 3, 32, 32), "extra": torch.zeros(1)}, path)
    with pytest.raises(
        InputFileError, match=r"does not fit --clip-model ViT-B-32: \d+ missing .*1 unexpected"
    ):
        ClipEncoder.load("ViT-B-32", str(path), device="cpu")


def test_bad_model_and_device_names_list_the_choices(clip_weights: Path) -> None:
    with pytest.raises(InvalidValueError, match=r"not an open_clip model: did you mean .*ViT-B-32"):
        ClipEncoder.load("ViT-B-23", str(clip_weights), device="cpu")
    with pytest.raises(InvalidValueError, match=r"--device 'tpu' is not valid: use one of auto, cpu, cuda"):
        ClipEncoder.load("ViT-B-32", str(clip_weights), device="tpu")


# --- the pipeline on real clips ---------------------------------------------------------------------------


def test_real_clips_give_one_row_per_clip_and_full_metadata(
    encoder: ClipEncoder, clip_weights: Path, shared_data: Path, tmp_path: Path
) -> None:
    from decord import VideoReader
    from PIL import Image

    videos = [shared_data / "videos" / n for n in ("blueshirt.mp4", "book.mp4", "dollyzoom-stacked.mp4")]
    events: list[object] = []
    result = run(_request(videos, tmp_path / "out"), progress=events.append, encoder=encoder)
    assert result.ok and [o.status for o in result.outcomes] == ["done"] * 3
    assert isinstance(events[0], Planned) and events[0].todo == 3
    assert sum(isinstance(e, ItemFinished) for e in events) == 3
    for path in videos:
        features = load_feature_array(tmp_path / "out" / f"{path.stem}.npz", "features", expected_dim=512)
        meta = json.loads((tmp_path / "out" / f"{path.stem}.json").read_text())
        n_frames = len(VideoReader(str(path)))
        assert features.shape == (meta["clips"], 512) and meta["clips"] == (n_frames - 1) // 60 + 1 == 2
        assert meta["model"] == "ViT-B-32" and meta["weights_sha256"] == file_sha256(clip_weights)
        assert meta["clip_len"] == 2.0 and meta["fps"] == pytest.approx(30.0)
        assert meta["duration"] == pytest.approx(n_frames / 30, abs=1e-3)
        assert meta["normalisation"]["pixel_mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])
        assert meta["features_sha256"] == array_sha256(features)
        assert Path(meta["source"]["path"]).resolve() == path.resolve()
    # the portrait clip's features equal open_clip's own preprocessing and encode_image of those frames
    meta = json.loads((tmp_path / "out" / "blueshirt.json").read_text())
    assert meta["frame_indices"] == [29, 79]
    frames = VideoReader(str(videos[0])).get_batch(meta["frame_indices"]).asnumpy()
    pixels = torch.stack([encoder.preprocess(Image.fromarray(f)) for f in frames])
    with torch.no_grad():
        expected = encoder.model.encode_image(pixels).numpy()
    got = load_feature_array(tmp_path / "out" / "blueshirt.npz", "features")
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_cli_bad_inputs_one_line_each_and_the_good_ones_done(
    clip_weights: Path, shared_data: Path, one_frame: Path, tmp_path: Path
) -> None:
    real = shared_data / "videos" / "book.mp4"
    bad = {
        "empty.mp4": b"",
        "truncated.mp4": real.read_bytes()[:300_000],
        "garbage.mp4": np.random.default_rng(1).integers(0, 256, 40_000, dtype=np.uint8).tobytes(),
        "notes.txt": b"hello\n",
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "sine=frequency=440:duration=1", "-c:a", "aac", str(tmp_path / "audio.m4a")],
        check=True,
    )  # fmt: skip
    bad["audio.m4a"] = b""  # made above: sound only, no video stream
    (tmp_path / "a").mkdir()
    shutil.copy(one_frame, tmp_path / "a" / "book.mp4")  # the same stem as the real book.mp4
    inputs = [
        real,
        one_frame,
        *(tmp_path / n for n in bad),
        tmp_path / "missing.mp4",
        tmp_path / "a" / "book.mp4",
    ]
    out = tmp_path / "out"
    args = ["extract", *map(str, inputs), "--out", str(out), "--clip-weights", str(clip_weights)]
    result = runner.invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 1, result.output
    lines = [t for t in result.stderr.strip().splitlines() if not PROGRESS_LINE.match(t)]  # one per video
    assert all(line.startswith("error: ") for line in lines) and len(lines) == 8, lines
    for name in [*bad, "missing.mp4"]:
        assert sum(name in line for line in lines) == 1, (name, lines)
    assert sum("feature name 'book'" in line for line in lines) == 2  # both sides of the collision
    assert "Traceback" not in result.output
    assert load_feature_array(out / "one_frame.npz", "features").shape == (1, 512)
    assert sorted(p.name for p in out.iterdir()) == ["one_frame.json", "one_frame.npz"]
    assert "failed" in result.stdout and "8" in result.stdout
    assert "no video stream" in next(line for line in lines if "audio.m4a" in line)


def test_resume_skips_current_features_and_redoes_stale_ones(
    encoder: ClipEncoder, clip_weights: Path, one_frame: Path, shared_data: Path, tmp_path: Path
) -> None:
    videos = [one_frame, shared_data / "videos" / "toby2.mp4"]
    out = tmp_path / "out"
    assert [o.status for o in run(_request(videos, out), encoder=encoder).outcomes] == ["done", "done"]
    # the CLI, with the same settings, finds everything current (and says so, exit 0)
    result = runner.invoke(
        app,
        [
            "extract",
            *map(str, videos),
            "--out",
            str(out),
            "--clip-weights",
            str(clip_weights),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "skipped" in result.stdout
    statuses = [o.status for o in run(_request(videos, out), encoder=encoder).outcomes]
    assert statuses == ["skipped", "skipped"]
    # a different clip length is another setting: redone
    assert {o.status for o in run(_request(videos, out, clip_len=1.0), encoder=encoder).outcomes} == {"done"}
    # a source that changed (mtime), or an .npz that no longer matches its metadata: redone
    os.utime(one_frame, ns=(time.time_ns(), time.time_ns()))
    np.savez(out / "toby2.npz", features=np.zeros((2, 512), dtype=np.float32))
    assert [o.status for o in run(_request(videos, out, clip_len=1.0), encoder=encoder).outcomes] == [
        "done", "done"
    ]  # fmt: skip


def test_shards_split_the_sorted_videos_without_overlap(
    encoder: ClipEncoder, one_frame: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(5):
        shutil.copy(one_frame, folder / f"v{i}.mp4")
    names = []
    for shard in ("0/2", "1/2"):
        result = run(_request([folder], tmp_path / "out", shard=shard), encoder=encoder)
        assert result.ok
        names.append([o.name for o in result.outcomes])
    assert names == [["v0", "v2", "v4"], ["v1", "v3"]]
    assert len(list((tmp_path / "out").glob("*.npz"))) == 5


def test_queries_file_gives_token_features_and_reports_bad_rows(encoder: ClipEncoder, tmp_path: Path) -> None:
    rows = [
        {"qid": 7, "query": "a man cooks pasta"},
        {"qid": 8, "query": "  "},
        {"qid": 9, "query": " ".join(["long"] * 90)},
    ]
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run(_request([], tmp_path / "out", queries=queries), encoder=encoder)
    by_name = {o.name: o for o in result.outcomes}
    assert by_name["qid7"].status == "done" and by_name["qid7"].rows == 6  # SOT + 4 words + EOT
    assert by_name["qid8"].status == "failed" and "empty" in (by_name["qid8"].reason or "")
    assert by_name["qid9"].status == "done" and "truncated" in (by_name["qid9"].reason or "")
    states = load_feature_array(tmp_path / "out" / "qid7.npz", "last_hidden_state", expected_dim=512)
    assert np.allclose(states, encoder.encode_query("a man cooks pasta").numpy(), atol=1e-5)
    assert load_feature_array(tmp_path / "out" / "qid9.npz", "last_hidden_state").shape == (77, 512)
    meta = json.loads((tmp_path / "out" / "qid7.json").read_text())
    assert meta["kind"] == "text" and meta["qid"] == "7" and meta["query"] == "a man cooks pasta"
    again = run(_request([], tmp_path / "out", queries=queries), encoder=encoder)
    assert [o.status for o in again.outcomes if o.name != "qid8"] == ["skipped", "skipped"]


# --- the CLI's fast failures ------------------------------------------------------------------------------


def test_offline_openai_fails_fast_and_names_clip_weights_path(one_frame: Path, tmp_path: Path) -> None:
    import open_clip  # noqa: F401  (import time is not the failure path's)

    start = time.perf_counter()
    result = runner.invoke(app, ["extract", str(one_frame), "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert time.perf_counter() - start < 5.0
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "--clip-weights PATH" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shard", "2/2"], "--shard 2/2: I must be in 0..N-1"),
        (["--batch-size", "0"], "--batch-size 0"),
        (["--clip-len", "0"], "--clip-len 0.0"),
    ],
)
def test_bad_options_are_one_line_before_any_work(
    one_frame: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    result = runner.invoke(app, ["extract", str(one_frame), "--out", str(tmp_path / "o"), *extra])
    assert result.exit_code == 1 and message in result.stderr and result.stderr.count("\n") == 1


def test_nothing_to_extract_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["extract", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "nothing to extract" in result.stderr


def _assert_whole(out: Path, names: list[str]) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}{ext}" for n in names for ext in (".json", ".npz")
    )
    for name in names:
        features = load_feature_array(out / f"{name}.npz", "features", expected_dim=512)
        assert json.loads((out / f"{name}.json").read_text())["features_sha256"] == array_sha256(features)


def test_two_concurrent_runs_on_one_folder_leave_only_whole_files(
    encoder: ClipEncoder, one_frame: Path, shared_data: Path, tmp_path: Path
) -> None:
    # Threads share the folder exactly as processes do: every write is a temp file and a rename.
    videos = [one_frame, shared_data / "videos" / "toby2.mp4"]
    out = tmp_path / "out"
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run(_request(videos, out), encoder=encoder), range(2)))
    assert all(r.ok for r in results)
    _assert_whole(out, ["one_frame", "toby2"])


@pytest.mark.slow
def test_two_concurrent_processes_on_one_folder_leave_only_whole_files(
    clip_weights: Path, one_frame: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "readcli", "extract", str(one_frame), "--out", str(out),
               "--clip-weights", str(clip_weights), "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    _assert_whole(out, ["one_frame"])
