"""How many cores other processes are using now, so a pool of CPU workers can take its fair share.

The scheduler splits a CPU between runnable processes. With two cores, two demo workers and one
process of someone else's, the demo gets 4/3 of a core, so it takes 1.5× as long as on a quiet
machine however fast it is. A third worker would get it 3/4 of the CPU instead, but on a quiet
machine three single-thread workers on two cores cost 13 % more CPU time than two (they evict each
other's caches; docs/performance.md). So the demo's runner keeps one worker in reserve and lets it
work only while this module says another process is using at least half a core.

Measured from Linux's /proc: the CPU time every process spent in a window (/proc/stat) minus the
CPU time of the pool's own processes (/proc/PID/stat), over a window of at least `min_window`
seconds. Where /proc is missing (macOS, Windows) it reports nothing, and the pool keeps its size.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

PROC = Path("/proc")
BUSY_CORES = 0.5  # another process counts as busy from half a core on (docs/performance.md)


def _read_busy_ticks() -> int | None:
    """Clock ticks every CPU spent on work since boot: /proc/stat's user..steal (not idle, iowait)."""
    try:
        first = (PROC / "stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if first[0] != "cpu" or len(first) < 9:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return user + nice + system + irq + softirq + steal  # guest time is inside user already


def _read_process_ticks(pid: int) -> int | None:
    """utime + stime of one process in clock ticks (None once it has exited)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces
    return int(fields[11]) + int(fields[12])  # stat fields 14 and 15 (1-based over the whole line)


def children_of(pid: int) -> set[int]:
    """The processes `pid` started (its pool's workers): every /proc/PID/stat whose parent is `pid`."""
    found: set[int] = set()
    try:
        entries = [entry for entry in PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return found
    for entry in entries:
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:  # exited while we looked
            continue
        if int(fields[1]) == pid:  # stat field 4, the parent's id
            found.add(int(entry.name))
    return found


class OtherCpu:
    """Cores used by processes outside a given set, averaged over windows of `min_window` seconds."""

    def __init__(
        self,
        min_window: float = 2.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        busy_ticks: Callable[[], int | None] = _read_busy_ticks,
        process_ticks: Callable[[int], int | None] = _read_process_ticks,
        ticks_per_second: float | None = None,
    ) -> None:
        self.min_window = min_window
        self._clock = clock
        self._busy_ticks = busy_ticks
        self._process_ticks = process_ticks
        if ticks_per_second is None:
            ticks_per_second = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self._hz = ticks_per_second
        self._start: tuple[float, int, dict[int, int]] | None = None

    def sample(self, own: Iterable[int]) -> float | None:
        """Cores used by others since the window began; None until a whole window has passed, while
        the set of own processes changes, or without /proc. A result starts the next window."""
        now = self._clock()
        busy = self._busy_ticks()
        mine = {pid: ticks for pid in own if (ticks := self._process_ticks(pid)) is not None}
        if busy is None:
            return None
        if self._start is None or set(mine) != set(self._start[2]):
            self._start = (now, busy, mine)  # a new or changed set: its earlier time is not a window's
            return None
        began, busy_then, mine_then = self._start
        if now - began < self.min_window:
            return None
        self._start = (now, busy, mine)
        own_ticks = sum(mine[pid] - mine_then[pid] for pid in mine)
        return max(0.0, (busy - busy_then - own_ticks) / self._hz / (now - began))
