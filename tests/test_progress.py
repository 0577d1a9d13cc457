"""Progress off a terminal (issue 18, item 4): plain lines per stage or epoch, a heartbeat at least every
30 s of a long stage, elapsed time and ETA (readcli/cli/progress.py), and the commands that use them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from readcli.cli.progress import HEARTBEAT_S, Ticker, clock_text, plain_progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ticker(every: float = HEARTBEAT_S) -> tuple[Ticker, list[str], FakeClock]:
    lines: list[str] = []
    clock = FakeClock()
    return Ticker("ground", lines.append, every=every, clock=clock), lines, clock


def test_clock_text() -> None:
    assert [clock_text(s) for s in (0, 41.4, 723, 3729)] == ["0:00", "0:41", "12:03", "1:02:09"]


def test_one_line_per_finished_stage_with_elapsed_time() -> None:
    ticker, lines, clock = _ticker()
    ticker.update("load", 0, 2)
    clock.now += 3
    ticker.update("load", 2, 2)
    for done in range(0, 301, 30):  # a stage that ends within 30 s: only its end is written
        clock.now += 1
        ticker.update("extract", done, 300)
    assert lines == ["ground: load 2/2 (100%), done in 0:03", "ground: extract 300/300 (100%), done in 0:11"]


def test_a_long_stage_gets_a_heartbeat_with_elapsed_and_eta_at_least_every_30_s() -> None:
    ticker, lines, clock = _ticker()
    ticker.update("extract", 0, 300)
    for done in range(1, 112):  # 111 clips, one every 0.9 s: 100 s
        clock.now += 0.9
        ticker.update("extract", done, 300)
    assert len(lines) == 3  # after 30.6, 61.2 and 91.8 s
    assert lines[0] == "ground: extract 34/300 (11%), elapsed 0:31, eta 3:59"  # 30.6 s / 34 * 266
    assert [x.split("elapsed ")[1][:4] for x in lines] == ["0:31", "1:01", "1:32"]


def test_a_stage_that_sends_no_event_is_still_reported_by_the_heartbeat() -> None:
    ticker, lines, clock = _ticker()
    ticker.update("load", 0, 2)
    clock.now += 29
    ticker.heartbeat()
    assert lines == []
    clock.now += 2
    ticker.heartbeat()  # what the background thread calls
    assert lines == ["ground: load 0/2 (0%), elapsed 0:31, eta unknown"]


def test_epochs_carry_the_runs_eta_from_the_mean_epoch() -> None:
    ticker, lines, clock = _ticker()
    for epoch in range(2):
        for step in range(1, 11):
            clock.now += 6  # 60 s per epoch
            ticker.update(f"epoch {epoch + 1}/5", step, 10, of=(epoch, 5), detail="loss=0.500")
    # epoch 1 is timed from its first step event (54 s), epoch 2 from the end of epoch 1 (60 s)
    assert [x for x in lines if "done in" in x] == [
        "ground: epoch 1/5 10/10 (100%), done in 0:54, run eta 3:36 (1/5), loss=0.500",
        "ground: epoch 2/5 10/10 (100%), done in 1:00, run eta 2:51 (2/5), loss=0.500",
    ]
    # the heartbeat 30 s in: this epoch's ETA, and the run's from this epoch's pace (no epoch done yet)
    assert lines[0] == "ground: epoch 1/5 5/10 (50%), elapsed 0:24, eta 0:24, run eta 3:36 (1/5), loss=0.500"


def test_plain_progress_is_off_on_a_terminal_and_on_for_a_file(tmp_path: Path) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    with plain_progress("x", Tty()) as ticker:
        assert ticker is None
    out = io.StringIO()
    with plain_progress("extract", out, every=0.05) as ticker:
        assert ticker is not None
        ticker.update("video a.mp4", 3, 3)
    assert out.getvalue().splitlines() == ["extract: video a.mp4 3/3 (100%), done in 0:00"]


def test_a_closed_stream_does_not_stop_the_job() -> None:
    out = io.StringIO()
    with plain_progress("ground", out) as ticker:
        out.close()
        assert ticker is not None
        ticker.update("load", 2, 2)  # no exception


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path / "cache"))


def test_ground_off_a_terminal_prints_one_line_per_stage(
    private_cache: None, tiny_clip: Path, shared_data: Path
) -> None:
    from conftest import TINY_CLIP
    from typer.testing import CliRunner

    from readcli.cli import app

    parity = shared_data / "moment_detr" / "parity_model.ckpt"
    video = shared_data / "videos" / "book.mp4"
    args = ["ground", str(video), "a book", "--backbone", str(parity), "--clip-model", TINY_CLIP,
            "--clip-weights", str(tiny_clip), "--device", "cpu", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    stages = [line.split(" ")[1] for line in result.stderr.splitlines() if line.startswith("ground: ")]
    assert stages == ["load", "extract", "ground"]
    assert all(", done in " in line for line in result.stderr.splitlines() if line.startswith("ground: "))


def test_extract_off_a_terminal_prints_one_line_per_video_with_the_runs_eta(
    private_cache: None, tiny_clip: Path, shared_data: Path, tmp_path: Path
) -> None:
    from conftest import TINY_CLIP
    from typer.testing import CliRunner

    from readcli.cli import app

    videos = [str(shared_data / "videos" / name) for name in ("book.mp4", "toby2.mp4")]
    args = ["extract", *videos, "--out", str(tmp_path / "out"), "--clip-model", TINY_CLIP,
            "--clip-weights", str(tiny_clip), "--device", "cpu", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("extract: ")]
    assert len(lines) == 2 and all(", done in " in line for line in lines), lines
    assert "(1/2)" in lines[0] and "(2/2)" in lines[1]  # the run's position and ETA
