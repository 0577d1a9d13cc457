"""New files honour the umask (issue 18, item 5): readcli.fileio's atomic writes used mkstemp's 0600, so
labmates on a shared cluster could not read features, bundles, metrics or plots."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from readcli import fileio
from readcli.fileio import atomic_write_json, atomic_write_text, current_umask, honour_umask

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_get_0666_less_the_umask(tmp_path: Path, umask: int) -> None:
    atomic_write_text(tmp_path / "metrics.txt", "ok")
    atomic_write_json(tmp_path / "deep" / "run.json", {"a": 1})  # folders made on the way too
    expected = 0o666 & ~umask  # 0644 under 022, 0664 under 002
    assert _mode(tmp_path / "metrics.txt") == expected
    assert _mode(tmp_path / "deep" / "run.json") == expected
    assert _mode(tmp_path / "deep") == 0o777 & ~umask
    assert not [p for p in tmp_path.rglob(".*.tmp")]  # no temporary left


def test_a_replaced_file_takes_the_current_umask_not_the_old_files_mode(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "bundle.json"
    target.write_text("old")
    target.chmod(0o600)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o666 & ~umask


def test_staging_folders_can_be_given_the_umasks_mode(tmp_path: Path, umask: int) -> None:
    staging = Path(tempfile.mkdtemp(dir=tmp_path))  # 0700 by design of mkdtemp
    honour_umask(staging, directory=True)
    assert _mode(staging) == 0o777 & ~umask


def test_the_umask_is_read_without_changing_it(umask: int, monkeypatch: pytest.MonkeyPatch) -> None:
    assert current_umask() == umask
    assert current_umask() == umask  # reading did not change it

    def no_proc(*args: object, **kwargs: object) -> None:
        raise OSError("no /proc here")

    monkeypatch.setattr(fileio, "open", no_proc, raising=False)  # the fallback: set and restore
    assert current_umask() == umask and current_umask() == umask
