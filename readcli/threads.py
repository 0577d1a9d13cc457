"""How many intra-op threads readcli's CPU work uses, decided in one place (docs/performance.md).

torch's default is one intra-op thread per core. On a CPU shared with other work that collapses:
OpenMP threads meet at a barrier after every operator, and when the scheduler has given one of the
cores to another process, the others spin until it comes back (a partial-OT solve measured 2.1 ms
with one thread and 368 ms with two while one other process kept a core busy). So readcli asks for
the cores that are free now, never more, and lets the user decide when they know better.

Precedence: an explicit request (`--threads`) > `READCLI_THREADS` > `OMP_NUM_THREADS` > the free
cores (usable cores minus the one-minute load average, at least 1).
"""

from __future__ import annotations

import os

from readcli.errors import InvalidValueError

THREADS_ENV = "READCLI_THREADS"
MAX_THREADS = 1024


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which cgroups and `taskset` narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def free_cores(*, load: float | None = None) -> int:
    """Usable cores not already busy: cores minus the rounded one-minute load average, at least 1.

    The load average lags by up to a minute, so a process that started seconds ago is not yet counted;
    that errs towards more threads, which is torch's default anyway.
    """
    cores = usable_cores()
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # not available on this platform: assume a quiet machine
            load = 0.0
    return max(1, min(cores, cores - round(load)))


def _parse(value: str, source: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise InvalidValueError(
            f"{source}={value!r} is not a thread count: use a whole number from 1 to {MAX_THREADS}"
        ) from None
    return check_threads(count, source)


def check_threads(count: int, source: str = "--threads") -> int:
    """Refuse a thread count outside 1..MAX_THREADS, naming where it came from."""
    if not 1 <= count <= MAX_THREADS:
        raise InvalidValueError(
            f"{source} {count} is out of range: use a whole number from 1 to {MAX_THREADS}"
        )
    return count


def resolve_threads(requested: int | None = None) -> int:
    """The intra-op thread count to use, by the precedence in the module docstring."""
    if requested is not None:
        return check_threads(requested)
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            return _parse(value, name)
    return free_cores()


def apply_threads(requested: int | None = None) -> int:
    """Resolve the thread count and give it to torch; returns the count used."""
    # lazy: torch loads only when CPU work starts, so the CLI may import this module at start-up
    import torch

    count = resolve_threads(requested)
    torch.set_num_threads(count)
    return count
