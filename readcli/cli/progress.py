"""Progress for a stream that is not a terminal: plain lines a log file can keep (docs/reliability.md).

On a terminal the commands draw rich bars; sent to a file or a pipe, those bars print nothing, and a
long job looked dead (issue 18). `plain_progress(command, stream)` returns a `Ticker` that writes one
line when a stage (or an epoch) ends, and a heartbeat line at least every `every` seconds while one
runs, each with the stage's elapsed time and an ETA; on a terminal it returns None and the caller
keeps its bars. A line looks like

    ground: extract 120/300 (40%), elapsed 0:41, eta 1:02

and `of` (an epoch of N, a video of N) adds the whole run's ETA from the mean stage so far.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

HEARTBEAT_S = 30.0  # the longest silence while a stage runs (issue 18: "at least every 30 s")
# every plain progress line starts with its command's name and a colon; no error or warning line does
PROGRESS_LINE = re.compile(r"^(ground|extract|finetune|demo|summarize|inspect-ot): ")


def clock_text(seconds: float) -> str:
    """0:41, 12:03, 1:02:09: minutes and seconds, hours when there are any."""
    whole = max(0, int(round(seconds)))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class _Stage:
    name: str
    started: float
    done: int = 0
    total: int | None = None
    of: tuple[int, int] | None = None  # (index, count) of this stage in the run, 0-based index
    detail: str = ""


class Ticker:
    """Plain progress lines: a stage's end, and a heartbeat while it runs (module docstring).

    `update` is cheap and may be called for every step; a daemon thread writes the heartbeat, so a
    stage that sends no event for minutes (a model loading) is still reported. Use as a context
    manager, or call `close()`.
    """

    def __init__(
        self,
        command: str,
        write: Callable[[str], None],
        *,
        every: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.command = command
        self._write = write
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._stage: _Stage | None = None
        self._last_line = clock()
        self._durations: list[float] = []  # finished stages' seconds, for the run's ETA
        self._last_end: float | None = None  # when the last stage finished
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Ticker:
        self._thread = threading.Thread(target=self._beat, name="readcli-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def update(
        self, stage: str, done: int, total: int | None, *, of: tuple[int, int] | None = None, detail: str = ""
    ) -> None:
        """Record a stage's progress; a new stage name starts its clock, done >= total ends it."""
        with self._lock:
            now = self._clock()
            current = self._stage
            if current is None or current.name != stage:
                # a stage that follows a finished one started when that one ended (an epoch's first
                # step event comes after the step: its time, and the evaluation between epochs, count)
                current = self._stage = _Stage(stage, self._last_end if self._last_end is not None else now)
            current.done, current.total, current.of, current.detail = done, total, of, detail
            if total is not None and done >= total:
                self._durations.append(now - current.started)
                self._emit(current, now, finished=True)
                self._stage, self._last_end = None, now
            elif now - self._last_line >= self._every:
                self._emit(current, now, finished=False)

    def heartbeat(self) -> None:
        """Write the running stage's line if nothing was written for `every` seconds."""
        with self._lock:
            now = self._clock()
            if self._stage is not None and now - self._last_line >= self._every:
                self._emit(self._stage, now, finished=False)

    def _beat(self) -> None:
        while not self._stop.wait(min(self._every, 5.0)):
            self.heartbeat()

    def _emit(self, stage: _Stage, now: float, *, finished: bool) -> None:
        self._last_line = now
        self._write(self.line(stage, now, finished=finished))

    def line(self, stage: _Stage, now: float, *, finished: bool) -> str:
        elapsed = now - stage.started
        parts = [f"{self.command}: {stage.name}"]
        if stage.total:
            parts[0] += f" {stage.done}/{stage.total} ({100 * stage.done // stage.total}%)"
        parts.append("done in " + clock_text(elapsed) if finished else "elapsed " + clock_text(elapsed))
        left = self._stage_left(stage, elapsed)
        if not finished:
            parts.append("eta " + (clock_text(left) if left is not None else "unknown"))
        if stage.of is not None:
            run_left = self._run_left(stage, elapsed, 0.0 if finished else left)
            if run_left is not None:
                parts.append(f"run eta {clock_text(run_left)} ({stage.of[0] + 1}/{stage.of[1]})")
        if stage.detail:
            parts.append(stage.detail)
        return ", ".join(parts)

    @staticmethod
    def _stage_left(stage: _Stage, elapsed: float) -> float | None:
        if not stage.total or stage.done <= 0:
            return None
        return elapsed / stage.done * (stage.total - stage.done)

    def _run_left(self, stage: _Stage, elapsed: float, left: float | None) -> float | None:
        assert stage.of is not None
        index, count = stage.of
        if left is None:
            return None
        mean = sum(self._durations) / len(self._durations) if self._durations else elapsed + left
        return left + mean * max(0, count - index - 1)


@contextmanager
def plain_progress(
    command: str, stream: Any | None = None, *, every: float = HEARTBEAT_S
) -> Iterator[Ticker | None]:
    """A running Ticker writing to `stream` (default stderr) when it is not a terminal, else None.

    `stream` may be a rich Console (its `.file` is used) or a text stream. Use as
    `with plain_progress("ground", err_console) as ticker:` and call `ticker.update(...)` if not None.
    """
    target: TextIO = getattr(stream, "file", stream) if stream is not None else sys.stderr
    if _is_terminal(target):
        yield None
        return

    def write(text: str) -> None:
        try:
            target.write(text + "\n")
            target.flush()
        except (OSError, ValueError):  # a closed pipe must not stop the job it reports on
            pass

    with Ticker(command, write, every=every) as ticker:
        yield ticker


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
