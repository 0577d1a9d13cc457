"""`readcli extract --shard I/N` writes a manifest; `readcli extract-merge` checks each was done once."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import TINY_CLIP  # (tests/ is on sys.path)
from typer.testing import CliRunner

from readcli.cli import app
from readcli.errors import InputFileError
from readcli.features.clip_encoder import ClipEncoder
from readcli.features.manifest import manifest_path, read_manifests
from readcli.pipelines import extract_merge
from readcli.pipelines.extract import ExtractRequest, run
from readcli.pipelines.extract_merge import MergeRequest

ffmpeg_exe = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe
runner = CliRunner()


@pytest.fixture(scope="module")
def encoder(tiny_clip: Path) -> ClipEncoder:
    return ClipEncoder.load(TINY_CLIP, str(tiny_clip), device="cpu")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v0..v4: copies of a one-frame video; broken.mp4: not a video (its extraction fails)."""
    folder = tmp_path_factory.mktemp("videos")
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "testsrc=size=96x64:rate=30", "-frames:v", "1", "-pix_fmt", "yuv420p", str(folder / "v0.mp4")],
        check=True,
    )  # fmt: skip
    for i in range(1, 5):
        shutil.copy(folder / "v0.mp4", folder / f"v{i}.mp4")
    return folder


def _shard(encoder: ClipEncoder, videos: Path, out: Path, shard: str) -> None:
    request = ExtractRequest(paths=(str(videos),), out_dir=out, device="cpu", shard=shard)
    run(request, encoder=encoder)


def test_separate_shard_folders_merge_into_one(encoder: ClipEncoder, videos: Path, tmp_path: Path) -> None:
    for i in range(3):
        _shard(encoder, videos, tmp_path / f"s{i}", f"{i}/3")
    (manifest,) = read_manifests(tmp_path / "s1")
    assert (manifest.index, manifest.count) == (1, 3)
    assert manifest.videos == ("v0", "v1", "v2", "v3", "v4")
    assert [(i.name, i.status) for i in manifest.items] == [("v1", "done"), ("v4", "done")]
    merged = tmp_path / "merged"
    result = extract_merge.run(MergeRequest(tuple(tmp_path / f"s{i}" for i in range(3)), into=merged))
    assert result.ok and (result.expected, result.done, result.copied) == (5, 5, 5)
    assert sorted(p.name for p in merged.iterdir()) == sorted(
        f"v{i}{s}" for i in range(5) for s in (".json", ".npz")
    )


def test_a_missing_shard_and_its_videos_are_named_one_line_each(
    encoder: ClipEncoder, videos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "shared"
    for shard in ("0/3", "2/3"):  # shard 1/3's job never ran
        _shard(encoder, videos, out, shard)
    result = extract_merge.run(MergeRequest((out,), into=tmp_path / "merged"))
    assert not result.ok and result.copied == 0 and not (tmp_path / "merged").exists()
    assert result.problems == ["shard 1/3: no manifest in the given folders"]
    assert result.missing == [
        "missing video v1: in no shard's outcomes",
        "missing video v4: in no shard's outcomes",
    ]
    assert result.duplicated == []


def test_overlapping_shards_are_duplicates_and_lost_files_are_missing(
    encoder: ClipEncoder, videos: Path, tmp_path: Path
) -> None:
    _shard(encoder, videos, tmp_path / "a", "0/2")
    _shard(encoder, videos, tmp_path / "a", "1/2")
    _shard(encoder, videos, tmp_path / "b", "1/2")  # the same shard run twice, in two folders
    (tmp_path / "a" / "v2.npz").unlink()
    result = extract_merge.run(MergeRequest((tmp_path / "a", tmp_path / "b")))
    assert result.problems == []
    a, b = (tmp_path / "a").resolve(), (tmp_path / "b").resolve()
    assert result.missing == [
        f"missing video v2: shard 0/2 ({a}): done, but its feature files are not in that folder"
    ]
    assert result.duplicated == [
        f"duplicated video v1: done by shard 1/2 ({a}), shard 1/2 ({b})",
        f"duplicated video v3: done by shard 1/2 ({a}), shard 1/2 ({b})",
    ]


def test_a_failed_video_is_missing_with_its_reason_and_the_cli_exits_1(
    encoder: ClipEncoder, videos: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    shutil.copytree(videos, inputs)
    (inputs / "broken.mp4").write_bytes(b"not a video")
    for shard in ("0/2", "1/2"):
        _shard(encoder, inputs, tmp_path / "out", shard)
    result = runner.invoke(app, ["extract-merge", str(tmp_path / "out")])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: missing video broken: shard 0/2 (")
    summary = "INCOMPLETE: 5/6 items done exactly once by 2 shard runs (N=2); 1 missing, 0 duplicated"
    assert summary in " ".join(result.output.split())  # the console may wrap it


def test_the_source_list_given_again_is_what_is_checked(
    encoder: ClipEncoder, videos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    for shard in ("0/2", "1/2"):
        _shard(encoder, videos, out, shard)
    done = runner.invoke(app, ["extract-merge", str(out), "--videos", str(videos), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["ok"] is True
    extra = tmp_path / "more"
    extra.mkdir()
    shutil.copy(videos / "v0.mp4", extra / "v9.mp4")
    result = extract_merge.run(MergeRequest((out,), videos=(str(videos), str(extra))))
    assert result.missing == ["missing video v9: in no shard's outcomes"]


def test_a_damaged_manifest_is_one_clear_error(encoder: ClipEncoder, videos: Path, tmp_path: Path) -> None:
    _shard(encoder, videos, tmp_path, "0/2")
    manifest_path(tmp_path, 0, 2).write_text("{")
    with pytest.raises(InputFileError, match="shard-0-of-2.json: not a readable shard manifest"):
        extract_merge.run(MergeRequest((tmp_path,)))
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["extract-merge", str(empty)])
    assert result.exit_code == 1 and "no shard manifests" in result.output
