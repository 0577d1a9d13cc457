"""The background prefetcher: order, bounded look-ahead, errors, and stopping early."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from readcli.features.prefetch import Prefetcher


def test_items_arrive_in_order() -> None:
    with Prefetcher(iter(range(50)), depth=2) as items:
        assert list(items) == list(range(50))


def test_producer_runs_at_most_depth_plus_one_ahead() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for i in range(100):
            produced.append(i)
            yield i

    with Prefetcher(source(), depth=2) as items:
        iterator = iter(items)
        assert next(iterator) == 0
        time.sleep(0.3)  # let the producer fill the queue
        # consumed 1, two waiting in the queue, one built and blocked on put
        assert len(produced) <= 1 + 2 + 1


def test_error_in_the_producer_reaches_the_consumer_after_the_good_items() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    received = []
    with pytest.raises(OSError, match="disk gone"), Prefetcher(source()) as items:
        for item in items:
            received.append(item)
    assert received == [1]


def test_close_stops_the_producer_thread() -> None:
    def endless() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    prefetcher = Prefetcher(endless(), depth=1, name="test-endless")
    assert next(iter(prefetcher)) == 0
    prefetcher.close()
    assert not any(t.name == "test-endless" for t in threading.enumerate())


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        Prefetcher(iter([]), depth=0)
