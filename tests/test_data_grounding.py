"""The dataset directory layout and every refusal: missing files, widths, empty sets, stream order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from readcli.data.feature_spec import StreamSpec, VideoFeatureSpec
from readcli.data.grounding import load_grounding_split
from readcli.data.layout import open_layout
from readcli.errors import EmptyDatasetError, FeatureMissingError, InputFileError, InvalidValueError
from readcli.features.store import save_feature_array


def row(qid: int, vid: str) -> dict:
    return {
        "qid": qid, "query": f"query {qid}", "duration": 20, "vid": vid, "relevant_windows": [[4, 10]],
        "relevant_clip_ids": [2, 3, 4], "saliency_scores": [[1, 1, 1], [4, 4, 3], [0, 1, 0]],
    }  # fmt: skip


def make_dataset(
    root: Path, n: int = 6, streams: dict[str, int] | None = None, text_dim: int = 4
) -> list[dict]:
    """n rows on n // 2 videos (queries share videos, as in QVHighlights), features all present."""
    rows = [row(100 + i, f"vid{i // 2}") for i in range(n)]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    for name, dim in (streams or {"clip": 5}).items():
        for r in rows:
            value = np.full((10, dim), float(dim))  # each stream recognisable by its value
            save_feature_array(root / "video_features" / name / f"{r['vid']}.npz", "features", value)
    for r in rows:
        save_feature_array(
            root / "text_features" / f"qid{r['qid']}.npz", "last_hidden_state", np.ones((3, text_dim))
        )
    return rows


def test_missing_video_file_names_vid_and_directory(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    (tmp_path / "video_features" / "clip" / "vid1.npz").unlink()
    with pytest.raises(FeatureMissingError) as err:
        load_grounding_split(tmp_path, "train")
    message = str(err.value)
    assert "vid vid1" in message and str(tmp_path / "video_features" / "clip") in message
    assert "2 rows in all" in message and "--skip-missing" in message


def test_skip_missing_drops_rows_and_reports_the_count(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    (tmp_path / "video_features" / "clip" / "vid1.npz").unlink()
    (tmp_path / "text_features" / "qid104.npz").unlink()
    loaded = load_grounding_split(tmp_path, "train", skip_missing=True)
    assert loaded.report.skipped_count == 3 and loaded.report.rows_used == 3
    assert [a.qid for a in loaded.dataset.annotations] == [100, 101, 105]
    assert any("qid 104" in s for s in loaded.report.skipped)


def test_wrong_width_in_one_file_names_it_with_expected_and_found(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    bad = tmp_path / "video_features" / "clip" / "vid2.npz"
    save_feature_array(bad, "features", np.zeros((10, 7)))
    with pytest.raises(InputFileError, match=rf"{bad}: video stream 'clip' feature dimension 7, expected 5"):
        load_grounding_split(tmp_path, "train")
    bad_text = tmp_path / "text_features" / "qid103.npz"
    save_feature_array(bad, "features", np.zeros((10, 5)))
    save_feature_array(bad_text, "last_hidden_state", np.zeros((3, 9)))
    with pytest.raises(InputFileError, match=rf"{bad_text}: text feature dimension 9, expected 4"):
        load_grounding_split(tmp_path, "train")


def test_empty_training_set_is_a_clear_error(tmp_path: Path) -> None:
    make_dataset(tmp_path, n=2)
    for path in (tmp_path / "text_features").iterdir():
        path.unlink()
    with pytest.raises(EmptyDatasetError, match="train split of .* has no usable rows \\(2 skipped"):
        load_grounding_split(tmp_path, "train", skip_missing=True)


def test_several_streams_need_a_declared_order_which_is_then_used(tmp_path: Path) -> None:
    make_dataset(tmp_path, streams={"clip": 5, "slowfast": 3})
    with pytest.raises(InvalidValueError, match="several video feature streams .* \\(clip, slowfast\\)"):
        open_layout(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"video_streams": ["slowfast", "clip"]}))
    loaded = load_grounding_split(tmp_path, "train", spec_overrides={"normalize_video": False})
    assert loaded.spec.stream_names == ("slowfast", "clip")
    video = loaded.dataset[0].video
    np.testing.assert_array_equal(video[0, :3], 3.0)  # slowfast first, as declared
    np.testing.assert_array_equal(video[0, 3:8], 5.0)
    flipped = load_grounding_split(tmp_path, "train", video_streams=["clip", "slowfast"])
    with pytest.raises(
        InvalidValueError, match=r"bundle has \[slowfast, clip\], data .* has \[clip, slowfast\]"
    ):
        load_grounding_split(tmp_path, "val", video_streams=["clip", "slowfast"], expected_spec=loaded.spec)
    assert flipped.spec.stream_names == ("clip", "slowfast")


def test_bundle_spec_is_checked_and_then_used(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    bundle = VideoFeatureSpec(streams=(StreamSpec("clip", 5),), text_dim=4, max_v_l=6)
    loaded = load_grounding_split(tmp_path, "val", expected_spec=bundle)
    assert loaded.spec is bundle and loaded.dataset[0].video.shape == (6, 7)
    wide = VideoFeatureSpec(streams=(StreamSpec("clip", 512),), text_dim=4)
    with pytest.raises(
        InputFileError, match="feature dimension 5, expected 512 \\(as declared by the manifest or bundle\\)"
    ):
        load_grounding_split(tmp_path, "val", expected_spec=wide)


def test_manifest_keys_and_settings(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"clip_len": 1.0, "max_v_l": 4, "colour": "red"}))
    with pytest.raises(InputFileError, match="dataset.json: unknown keys colour"):
        open_layout(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"clip_len": 1.0, "max_v_l": 4}))
    loaded = load_grounding_split(tmp_path, "train", spec_overrides={"max_q_l": 2})
    assert (loaded.spec.clip_len, loaded.spec.max_v_l, loaded.spec.max_q_l) == (1.0, 4, 2)
    item = loaded.dataset[0]
    assert item.video.shape[0] == 4 and item.text.shape[0] == 2
    assert item.span_labels.shape == (0, 2)  # [4, 10] s lies past 4 clips of 1 s: nothing left


def test_split_names_and_missing_split(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    (tmp_path / "val.jsonl").rename(tmp_path / "highlight_val_release.jsonl")
    layout = open_layout(tmp_path)
    assert layout.split_file("val").name == "highlight_val_release.jsonl"
    with pytest.raises(InputFileError, match="no test annotations .* \\(splits found: train, val\\)"):
        layout.split_file("test")


def test_subset_and_labels_requirement(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    a = load_grounding_split(tmp_path, "train", samples=3, seed=4)
    b = load_grounding_split(tmp_path, "train", samples=3, seed=4)
    assert [x.qid for x in a.dataset.annotations] == [x.qid for x in b.dataset.annotations]
    assert len(a.dataset) == 3
    with pytest.raises(InvalidValueError, match="asked for 7 samples but only 6 are available"):
        load_grounding_split(tmp_path, "train", samples=7)
    (tmp_path / "train.jsonl").write_text(
        json.dumps({"qid": 1, "query": "q", "duration": 20, "vid": "vid0"}) + "\n"
    )
    with pytest.raises(InputFileError, match="train.jsonl:1: qid 1 has no labels"):
        load_grounding_split(tmp_path, "train")


def test_items_are_reproducible_per_epoch(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    dataset = load_grounding_split(tmp_path, "train", seed=3).dataset
    first = [dataset[i].saliency_neg.tolist() for i in range(len(dataset))]
    assert first == [dataset[i].saliency_neg.tolist() for i in range(len(dataset))]
    draws = set()
    for epoch in range(6):
        dataset.set_epoch(epoch)
        draws.add(tuple(tuple(dataset[i].saliency_neg.tolist()) for i in range(len(dataset))))
    assert len(draws) > 1  # easy negatives are re-drawn each epoch


def test_without_a_declared_order_the_bundle_order_is_used(tmp_path: Path) -> None:
    make_dataset(tmp_path, streams={"clip": 5, "slowfast": 3})
    bundle = VideoFeatureSpec(
        streams=(StreamSpec("slowfast", 3, False), StreamSpec("clip", 5, False)), text_dim=4
    )
    loaded = load_grounding_split(tmp_path, "val", expected_spec=bundle)
    assert loaded.spec is bundle
    np.testing.assert_array_equal(loaded.dataset[0].video[0, :3], 3.0)  # slowfast first, as the bundle has it
    (tmp_path / "dataset.json").write_text(json.dumps({"video_streams": ["clip", "slowfast"]}))
    with pytest.raises(
        InvalidValueError, match="another order"
    ):  # a declared order is checked, not overridden
        load_grounding_split(tmp_path, "val", expected_spec=bundle)
    manifest = {"video_streams": [{"name": "slowfast", "l2_normalize": True}, "clip"]}
    (tmp_path / "dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidValueError, match="stream 'slowfast' L2 normalisation bundle False vs data"):
        load_grounding_split(tmp_path, "val", expected_spec=bundle)


def youtube_rows(root: Path, clips: int = 6, audio_clips: int | None = 5) -> None:
    """Two YouTube Highlights rows with raw video (width 3), text, and audio (width 2) unless None."""
    match = [1, 0] * (clips // 2)
    rows = [
        {"qid": f"v{i}", "vid": f"v{i}", "duration": 12.0, "domain": "dog", "match": match} for i in range(2)
    ]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for r in rows:
        save_feature_array(
            root / "video_features" / "i3d" / f"{r['vid']}.npz", "features", np.full((clips, 3), 3.0)
        )
        save_feature_array(
            root / "text_features" / f"qid{r['qid']}.npz", "last_hidden_state", np.full((2, 4), 2.0)
        )
        if audio_clips is not None:
            save_feature_array(
                root / "audio_features" / f"{r['vid']}.npz", "features", np.ones((audio_clips, 2))
            )


def test_highlight_defaults_are_umt_raw_features_and_the_manifest_can_override(tmp_path: Path) -> None:
    youtube_rows(tmp_path, audio_clips=None)
    spec = load_grounding_split(tmp_path, "train").spec
    assert (spec.tef, spec.normalize_text, spec.streams[0].l2_normalize, spec.audio) == (
        False,
        False,
        False,
        None,
    )
    item = load_grounding_split(tmp_path, "train").dataset[0]
    np.testing.assert_array_equal(item.video, np.full((6, 3), 3.0))  # raw: no TEF, no L2
    np.testing.assert_array_equal(item.text, np.full((2, 4), 2.0))
    (tmp_path / "dataset.json").write_text(
        json.dumps({"tef": True, "normalize_video": True, "normalize_text": True})
    )
    spec = load_grounding_split(tmp_path, "train").spec
    assert (spec.tef, spec.normalize_text, spec.streams[0].l2_normalize, spec.video_dim) == (
        True,
        True,
        True,
        5,
    )
    (tmp_path / "dataset.json").write_text(
        json.dumps({"video_streams": [{"name": "i3d", "l2_normalize": True}]})
    )
    assert (
        load_grounding_split(tmp_path, "train").spec.streams[0].l2_normalize
    )  # per stream beats the default
    overridden = load_grounding_split(tmp_path, "train", spec_overrides={"normalize_video": False})
    assert not overridden.spec.streams[0].l2_normalize  # the explicit override beats the manifest
    (tmp_path / "qvh").mkdir()
    qvh = make_dataset(tmp_path / "qvh")  # QVHighlights keeps Moment-DETR's preprocessing
    assert qvh and load_grounding_split(tmp_path / "qvh", "train").spec.streams[0].l2_normalize


def test_audio_features_are_read_cut_and_recorded_in_the_spec(tmp_path: Path) -> None:
    youtube_rows(tmp_path, clips=6, audio_clips=5)
    loaded = load_grounding_split(tmp_path, "train")
    assert loaded.spec.audio == StreamSpec("audio", 2, l2_normalize=False) and loaded.spec.audio_dim == 2
    item = loaded.dataset[0]
    assert item.audio is not None and item.video.shape == (5, 3) and item.audio.shape == (5, 2)
    assert item.saliency.shape == (5,)  # video, audio and labels cut to min(6, 5, 6) clips
    val = load_grounding_split(tmp_path, "train", expected_spec=loaded.spec)
    assert val.spec is loaded.spec
    (tmp_path / "dataset.json").write_text(json.dumps({"audio_dir": None}))  # present, but left out
    without = load_grounding_split(tmp_path, "train")
    assert without.spec.audio is None and without.dataset[0].audio is None
    with pytest.raises(InvalidValueError, match="audio features bundle 2-wide vs data in .* none"):
        load_grounding_split(tmp_path, "train", expected_spec=loaded.spec)
    (tmp_path / "dataset.json").write_text(json.dumps({"audio_dir": "pann"}))
    with pytest.raises(InputFileError, match="audio feature directory not found: .*pann"):
        load_grounding_split(tmp_path, "train")
    (tmp_path / "dataset.json").unlink()
    (tmp_path / "audio_features" / "v1.npz").unlink()
    with pytest.raises(FeatureMissingError, match="audio.*vid v1"):
        load_grounding_split(tmp_path, "train")
    save_feature_array(tmp_path / "audio_features" / "v1.npz", "features", np.ones((5, 7)))
    with pytest.raises(InputFileError, match="v1.npz: audio feature dimension 7, expected 2"):
        load_grounding_split(tmp_path, "train")
