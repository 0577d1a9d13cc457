"""Dropping one kind of log record for the duration of a block (a library's or our own known line)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def dropping_records(logger: logging.Logger, prefix: str) -> Iterator[None]:
    """Within the block, records of `logger` whose message starts with `prefix` are not emitted."""

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(prefix)

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)
