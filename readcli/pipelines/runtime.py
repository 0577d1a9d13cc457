"""What a command does before its CPU work starts: the thread policy applied (readcli.threads;
--threads > READCLI_THREADS > OMP_NUM_THREADS > the free cores, docs/performance.md)."""

from __future__ import annotations

from readcli.threads import apply_threads


def use_threads(requested: int | None) -> None:
    """Set torch's intra-op threads for this process (imports torch)."""
    apply_threads(requested)
