"""Probing with decord, decoding with PyAV: real clips (portrait and landscape), the clip rule, bad files."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from readcli.errors import InputFileError
from readcli.features.video import iter_frames, open_video

ffmpeg_exe = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, Path]:
    """Small files made here: bad ones of every kind, a 1-frame video, and a faststart copy cut short."""
    root = tmp_path_factory.mktemp("videos")
    real = shared_data / "videos" / "book.mp4"
    files = {name: root / name for name in ("empty.mp4", "truncated.mp4", "garbage.mp4", "notes.txt")}
    files["empty.mp4"].write_bytes(b"")
    files["truncated.mp4"].write_bytes(real.read_bytes()[:300_000])  # the index (moov) is at the end
    files["garbage.mp4"].write_bytes(
        np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    )
    files["notes.txt"].write_text("not a video\n")
    files["audio.m4a"] = root / "audio.m4a"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(files["audio.m4a"]))
    files["one_frame.mp4"] = root / "one_frame.mp4"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30",
        "-frames:v",
        "1",
        "-pix_fmt",
        "yuv420p",
        str(files["one_frame.mp4"]),
    )
    faststart = root / "faststart.mp4"
    _ffmpeg("-i", str(real), "-c", "copy", "-movflags", "+faststart", str(faststart))
    files["cut_faststart.mp4"] = root / "cut_faststart.mp4"
    files["cut_faststart.mp4"].write_bytes(faststart.read_bytes()[:400_000])
    return files


@pytest.mark.parametrize(
    ("name", "size", "n_frames", "indices"),
    [
        ("blueshirt.mp4", (1920, 1080), 100, (29, 79)),  # portrait 1080x1920, 3.33 s
        ("book.mp4", (1080, 720), 120, (29, 89)),  # portrait 720x1080, 4.0 s
        ("dollyzoom-stacked.mp4", (1080, 1920), 120, (29, 89)),  # landscape
    ],
)
def test_real_clips_follow_the_clip_rule(
    shared_data: Path, name: str, size: tuple[int, int], n_frames: int, indices: tuple[int, ...]
) -> None:
    opened = open_video(shared_data / "videos" / name, clip_len=2.0)
    assert (opened.height, opened.width) == size
    assert opened.plan.n_frames == n_frames and opened.plan.fps == pytest.approx(30.0)
    assert opened.plan.frame_indices == indices
    assert opened.plan.duration == pytest.approx(n_frames / 30.0, abs=1e-3)
    frames = list(iter_frames(opened, opened.plan.frame_indices))
    assert [f.shape for f in frames] == [(*size, 3)] * len(indices)
    assert all(f.dtype == np.uint8 and f.std() > 1.0 for f in frames)  # real pictures, not blank
    # the frames are the ones decord's index names, pixel for pixel (PyAV decodes, decord probes)
    import decord

    reader = decord.VideoReader(str(opened.path), ctx=decord.cpu(0))
    expected = reader.get_batch(list(indices)).asnumpy()  # (C, H, W, 3)
    assert all(np.array_equal(f, e) for f, e in zip(frames, expected, strict=True))


def test_clip_length_changes_the_plan(shared_data: Path) -> None:
    opened = open_video(shared_data / "videos" / "book.mp4", clip_len=1.0)
    assert opened.plan.frame_indices == (14, 44, 74, 104)


def test_one_frame_video_gives_one_clip(made: dict[str, Path]) -> None:
    opened = open_video(made["one_frame.mp4"], clip_len=2.0)
    assert opened.plan.n_frames == 1 and opened.plan.frame_indices == (0,)
    assert len(list(iter_frames(opened, opened.plan.frame_indices))) == 1


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.mp4", "empty file"),
        ("truncated.mp4", "moov atom not found"),
        ("garbage.mp4", "not a readable video"),
        ("notes.txt", "not a readable video"),
        ("audio.m4a", "no video stream"),
    ],
)
def test_bad_files_raise_one_line_input_errors(
    made: dict[str, Path], capfd: pytest.CaptureFixture[str], name: str, reason: str
) -> None:
    with pytest.raises(InputFileError) as caught:
        open_video(made[name], clip_len=2.0)
    message = str(caught.value)
    assert message.startswith(str(made[name])) and reason in message and "\n" not in message
    assert "/github/workspace" not in message  # decord's source paths are trimmed
    assert capfd.readouterr().err == ""  # ffmpeg's and decord's native lines were captured, not printed


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="file not found"):
        open_video(tmp_path / "nope.mp4", clip_len=2.0)
    with pytest.raises(InputFileError, match="not a regular file"):
        open_video(tmp_path, clip_len=2.0)


def test_cut_file_with_its_index_first_decodes_what_survives(made: dict[str, Path]) -> None:
    # A known limit (docs/features.md): decord indexes only the frames present, so this reads as a
    # shorter video, not as an error; the metadata's n_frames and duration show it.
    opened = open_video(made["cut_faststart.mp4"], clip_len=2.0)
    assert 0 < opened.plan.n_frames < 120
    assert len(list(iter_frames(opened, opened.plan.frame_indices))) == opened.plan.n_clips


def test_repeated_indices_repeat_the_frame_and_frames_come_one_at_a_time(shared_data: Path) -> None:
    # A clip with no frame of its own shows the previous one, so a plan may name a frame twice.
    opened = open_video(shared_data / "videos" / "book.mp4", clip_len=2.0)
    frames = iter_frames(opened, [0, 0, 59, 119])
    first = next(frames)  # a generator: decoding stops where the consumer stops
    rest = list(frames)
    assert len(rest) == 3 and np.array_equal(first, rest[0]) and not np.array_equal(rest[1], rest[2])
    with pytest.raises(ValueError, match="ascending"):
        list(iter_frames(opened, [5, 3]))


def test_a_failure_midway_names_the_frame(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import av

    opened = open_video(shared_data / "videos" / "book.mp4", clip_len=2.0)
    with pytest.raises(InputFileError, match=r"near frame 500 of 120 \(the stream ended after 120 frames\)"):
        list(iter_frames(opened, [29, 500]))  # more frames asked for than the stream holds

    real_open = av.open

    class Failing:
        def __init__(self, path: str) -> None:
            self.container = real_open(path)
            self.streams = self.container.streams

        def __enter__(self) -> Failing:
            return self

        def __exit__(self, *exc: object) -> None:
            self.container.close()

        def decode(self, stream: Any) -> Any:
            for i, frame in enumerate(self.container.decode(stream)):
                if i == 40:
                    raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
                yield frame

    monkeypatch.setattr(av, "open", Failing)
    failed = r"book.mp4: decoding failed near frame 89 of 120 \(.*Invalid data"
    with pytest.raises(InputFileError, match=failed):
        list(iter_frames(opened, opened.plan.frame_indices))


def test_a_file_damaged_midway_is_reported_not_concealed(
    shared_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = bytearray((shared_data / "videos" / "book.mp4").read_bytes())
    third = len(data) // 3
    data[third : third + 20_000] = np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    opened = open_video(damaged, clip_len=2.0)  # the index at the end is intact: it opens
    with pytest.raises(InputFileError, match=r"damaged.mp4: decoding failed near frame \d+ of 120 .*damaged"):
        list(iter_frames(opened, opened.plan.frame_indices))
    assert capfd.readouterr().err == ""  # ffmpeg's own complaints are not printed
