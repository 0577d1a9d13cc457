"""Video/text input assembly as the official pipeline does it: L2 norm, cut, concatenation, TEF."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from readcli.data.feature_spec import StreamSpec, VideoFeatureSpec
from readcli.data.features import (
    assemble_clips,
    assemble_video,
    l2_normalize,
    peek_shape,
    prepare_text,
    temporal_endpoint_feature,
)
from readcli.errors import InputFileError, InvalidValueError
from readcli.features.store import save_feature_array


def test_tef_matches_the_official_formula() -> None:
    tef = temporal_endpoint_feature(4)
    np.testing.assert_allclose(tef, [[0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1.0]])
    assert tef.dtype == np.float32
    np.testing.assert_allclose(temporal_endpoint_feature(75)[-1], [74 / 75, 1.0], rtol=1e-6)


def test_l2_normalize_uses_the_official_epsilon() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    out = l2_normalize(x)
    np.testing.assert_allclose(out[0], [3 / (5 + 1e-5), 4 / (5 + 1e-5)], rtol=1e-7)
    np.testing.assert_array_equal(out[1], [0.0, 0.0])  # no NaN for an all-zero row


def test_assemble_cuts_to_shortest_stream_and_max_v_l_then_appends_tef() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(10, 3)) * 5, rng.normal(size=(9, 2)) * 5
    s = VideoFeatureSpec(
        streams=(StreamSpec("a", 3), StreamSpec("b", 2, l2_normalize=False)), text_dim=4, max_v_l=8
    )
    video = assemble_video([a, b], s)
    assert video.shape == (8, 3 + 2 + 2) and video.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(video[:, :3], axis=1), 1.0, atol=5e-5)  # stream a normalised
    np.testing.assert_allclose(video[:, 3:5], b[:8], rtol=1e-6)  # stream b raw, in second place
    np.testing.assert_allclose(video[:, 5:], temporal_endpoint_feature(8))
    # labels covering fewer clips (highlight datasets) cut further, and the TEF follows
    short = assemble_video([a, b], s, num_clips=5)
    np.testing.assert_allclose(short[:, 5:], temporal_endpoint_feature(5))


def test_audio_is_cut_to_the_same_clips_as_video_and_labels() -> None:
    """UMT's rule: num_clips = min(video rows, audio rows, labelled clips); the TEF follows that count."""
    rng = np.random.default_rng(2)
    video, audio = rng.normal(size=(9, 3)), rng.normal(size=(7, 2))
    s = VideoFeatureSpec(
        streams=(StreamSpec("v", 3, l2_normalize=False),), text_dim=4, max_v_l=None,
        audio=StreamSpec("audio", 2, l2_normalize=False),
    )  # fmt: skip
    v, a = assemble_clips([video], s, audio=audio)
    assert a is not None and v.shape == (7, 3 + 2) and a.shape == (7, 2) and a.dtype == np.float32
    np.testing.assert_allclose(a, audio, rtol=1e-6)  # raw, as UMT feeds it
    np.testing.assert_allclose(v[:, 3:], temporal_endpoint_feature(7))
    v, a = assemble_clips([video], s, audio=audio, num_clips=4)  # the labels cover fewer clips
    assert a is not None and len(v) == len(a) == 4
    v, a = assemble_clips([video[:3]], replace(s, max_v_l=2), audio=audio)
    assert a is not None and len(v) == len(a) == 2
    normalised = replace(s, audio=StreamSpec("audio", 2, l2_normalize=True))
    rows = assemble_clips([video], normalised, audio=audio)[1]
    assert rows is not None
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=5e-5)
    with pytest.raises(InvalidValueError, match="no audio array for a spec with audio"):
        assemble_clips([video], s)
    with pytest.raises(InvalidValueError, match="an audio array for a spec without audio"):
        assemble_clips([video], replace(s, audio=None), audio=audio)


def test_text_is_cut_to_max_q_l_and_normalised() -> None:
    s = VideoFeatureSpec(streams=(StreamSpec("a", 3),), text_dim=4, max_q_l=5)
    text = prepare_text(np.random.default_rng(1).normal(size=(9, 4)), s)
    assert text.shape == (5, 4)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=5e-5)


def test_peek_shape_reads_headers_and_defers_errors_to_the_shared_loader(tmp_path: Path) -> None:
    save_feature_array(tmp_path / "v.npz", "features", np.zeros((7, 3)))
    np.save(tmp_path / "v.npy", np.zeros((1, 6, 2), dtype=np.float32))
    assert peek_shape(tmp_path / "v.npz", "features") == (7, 3)
    assert peek_shape(tmp_path / "v.npy", "features") == (6, 2)  # (1, N, d) accepted like the loader
    with pytest.raises(InputFileError, match="no key 'last_hidden_state' \\(keys present: features\\)"):
        peek_shape(tmp_path / "v.npz", "last_hidden_state")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputFileError, match="bad.npz: not a readable numpy feature file"):
        peek_shape(tmp_path / "bad.npz", "features")
