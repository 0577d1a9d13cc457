"""The thread policy: precedence, the free-core count, and one-line refusals."""

from __future__ import annotations

import pytest

from readcli.errors import InvalidValueError
from readcli.threads import THREADS_ENV, free_cores, resolve_threads, usable_cores


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return monkeypatch


def test_free_cores_subtracts_the_load_and_keeps_one() -> None:
    cores = usable_cores()
    assert free_cores(load=0.0) == cores
    assert free_cores(load=float(cores) + 5) == 1
    if cores >= 2:
        assert free_cores(load=1.2) == cores - 1


def test_precedence_request_then_readcli_env_then_omp(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads() == 3
    clean_env.setenv(THREADS_ENV, "5")
    assert resolve_threads() == 5
    assert resolve_threads(1) == 1


def test_default_is_the_free_cores(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr("os.getloadavg", lambda: (100.0, 0.0, 0.0))
    assert resolve_threads() == 1


@pytest.mark.parametrize("value", ["zero", "0", "-2", "1.5"])
def test_bad_env_value_is_one_line_naming_it(clean_env: pytest.MonkeyPatch, value: str) -> None:
    clean_env.setenv(THREADS_ENV, value)
    with pytest.raises(InvalidValueError, match=THREADS_ENV):
        resolve_threads()


def test_bad_request_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="--threads 0"):
        resolve_threads(0)
