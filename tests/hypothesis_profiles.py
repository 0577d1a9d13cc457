"""Example budgets of the fuzz tests (tests/test_fuzz_*.py), chosen by HYPOTHESIS_PROFILE.

The suite's profiles ("ci", the default, and "long") are registered in tests/conftest.py; this module
only reads the active name, so the fuzz tests work whether or not that registration is present, and
each test states its own budget: a small fixed one in CI (derandomized, so CI is deterministic), a
large random one in the long run (`bench/fuzz_long.sh`). FUZZ_EXAMPLES overrides the long budget.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings

LONG = os.environ.get("HYPOTHESIS_PROFILE", "ci") == "long"
LONG_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))


def fuzz(ci_examples: int, long_share: float = 1.0) -> Callable[[Any], Any]:
    """`@settings` for one fuzz test: `ci_examples` in CI; LONG_EXAMPLES x `long_share` in the long run
    (slow tests, e.g. a CLI run that trains, take a smaller share)."""
    return settings(
        max_examples=max(1, int(LONG_EXAMPLES * long_share)) if LONG else ci_examples,
        deadline=None,
        derandomize=not LONG,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
            HealthCheck.filter_too_much,
        ],
        print_blob=LONG,
    )


def record_case(result: str) -> None:
    """In the long run, append `test<TAB>result` (ok / refused) to $FUZZ_COUNT_FILE for every example
    run, so bench/fuzz_long.sh can count cases per test even in a round cut by its deadline."""
    path = os.environ.get("FUZZ_COUNT_FILE")
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{test}\t{result}\n")
