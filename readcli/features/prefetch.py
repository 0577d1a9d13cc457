"""Run an iterator in a background thread, a bounded number of items ahead of its consumer.

Decoding (decord, PIL) and encoding (torch) both release the GIL, so a decode thread overlaps with
the model. The queue bound keeps memory flat: at most `depth` items wait, plus one being built.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetcher(Generic[T]):
    """Iterate over `source` in a daemon thread; errors re-raise in the consumer; `close()` stops it."""

    def __init__(self, source: Iterable[T], *, depth: int = 1, name: str = "readcli-prefetch") -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._source = source
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        """Block until there is room or the consumer has gone; False when it has gone."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
        except BaseException as err:  # handed to the consumer, which re-raises it
            self._put(_Failure(err))
            return
        self._put(_DONE)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]

    def close(self) -> None:
        """Tell the producer to stop and wait for it (it stops at its next item)."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()  # unblock a producer waiting on a full queue
            except queue.Empty:
                self._thread.join(timeout=0.1)

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
