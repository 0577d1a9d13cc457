"""The thread policy: precedence, the free-core count, one-line refusals, and the CLI's --threads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from readcli.cli import app
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


# The CLI: every command that does CPU work takes --threads and applies it before the work starts.

THREADED_COMMANDS = ("finetune", "ground", "extract", "inspect-ot", "summarize")


@pytest.fixture()
def restore_threads() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("command", THREADED_COMMANDS)
def test_each_command_documents_threads(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0 and "--threads" in result.stdout


def test_threads_option_is_applied_before_the_work(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, restore_threads: None
) -> None:
    import torch

    g = np.random.default_rng(0)
    np.savez(tmp_path / "v.npz", features=g.standard_normal((8, 16)).astype(np.float32))
    np.savez(tmp_path / "t.npz", last_hidden_state=g.standard_normal((4, 16)).astype(np.float32))
    files = ["--video-features", str(tmp_path / "v.npz"), "--text-features", str(tmp_path / "t.npz")]
    torch.set_num_threads(2)
    result = CliRunner().invoke(app, ["inspect-ot", *files, "--json", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 1
    clean_env.setenv(THREADS_ENV, "2")  # the environment applies when --threads is not given
    assert CliRunner().invoke(app, ["inspect-ot", *files, "--json"]).exit_code == 0
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("command", ["finetune", "summarize"])
def test_bad_threads_is_one_line_exit_1(command: str, restore_threads: None) -> None:
    result = CliRunner().invoke(app, [command, "--threads", "0"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --threads 0 is out of range")
