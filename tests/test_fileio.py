from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

from readcli.errors import InputFileError
from readcli.features.store import load_feature_array, save_feature_array
from readcli.fileio import atomic_open, atomic_write_json, atomic_write_text


def test_atomic_write_keeps_previous_file_when_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_text(target, "old")
    with pytest.raises(OSError), atomic_open(target) as handle:
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary left behind


def test_atomic_write_into_a_file_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(InputFileError, match="not a directory"):
        atomic_write_text(blocker / "out.json", "data")


def test_feature_round_trip_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "v.npz"
    save_feature_array(path, "features", np.ones((3, 4)))
    assert load_feature_array(path, "features", expected_dim=4).shape == (3, 4)
    with pytest.raises(InputFileError, match=r"no key 'last_hidden_state' \(keys present: features\)"):
        load_feature_array(path, "last_hidden_state")
    with pytest.raises(InputFileError, match="dimension 4, expected 512"):
        load_feature_array(path, "features", expected_dim=512)
    save_feature_array(path, "features", np.array([[np.nan, 1.0]]))
    with pytest.raises(InputFileError, match="NaN or inf"):
        load_feature_array(path, "features")
    save_feature_array(path, "features", np.zeros((0, 4)))
    with pytest.raises(InputFileError, match="zero rows"):
        load_feature_array(path, "features")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(InputFileError, match="not a readable"):
        load_feature_array(tmp_path / "garbage.npz", "features")
    with pytest.raises(InputFileError, match="not found"):
        load_feature_array(tmp_path / "missing.npz", "features")


def test_json_is_strict_non_finite_numbers_become_null(tmp_path: Path) -> None:
    import json

    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"MR-long-mAP": float("nan"), "x": [1.5, float("inf")], "n": 3})
    text = target.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"MR-long-mAP": None, "x": [1.5, None], "n": 3}
