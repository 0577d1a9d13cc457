"""Property tests of every reader: a mutated record is accepted or refused with one ReadcliError line.

Each reader is called in this process on a file made from a valid one (the shared data's real rows, or
a file readcli wrote) with one hostile change (tests/fuzz_strategies.py). The property is readcli's
promise for bad input, at the library's edge: the call returns, or raises a ReadcliError whose message
is non-empty and short; no other exception (no RecursionError, AttributeError, ValueError from numpy,
MemoryError), and no warning (NumPy overflow or casts, torch) escapes. Budgets: tests/hypothesis_profiles.py.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzz_strategies import (
    damaged_text,
    dumps,
    feature_arrays,
    json_values,
    mutated,
    mutated_json,
    mutated_jsonl,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_profiles import fuzz, record_case
from reliability_inputs import read_jsonl

from readcli.errors import ReadcliError

MAX_MESSAGE = 1500  # a message names values shortened; a 10 MB value must never be echoed whole


def outcome(call: Callable[[], Any]) -> str:
    """'ok' or 'refused'; anything but a one-line ReadcliError, or any warning, fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            call()
        except ReadcliError as err:
            message = " ".join(str(err).split())
            assert message and len(message) <= MAX_MESSAGE, message[:300]
            record_case("refused")
            return "refused"
    record_case("ok")
    return "ok"


@pytest.fixture(scope="module")
def rows(shared_data: Path) -> dict[str, list[dict[str, Any]]]:
    qvh, hl = shared_data / "qvhighlights", shared_data
    return {
        "qvh_train": read_jsonl(qvh / "highlight_train_release.jsonl", 3),
        "qvh_val": read_jsonl(qvh / "highlight_val_release.jsonl", 3),
        "qvh_preds": read_jsonl(qvh / "sample_val_preds.jsonl", 3),
        "youtube": read_jsonl(hl / "youtube_highlight" / "youtube_highlight_val_release.jsonl", 2),
        "tvsum": read_jsonl(hl / "tvsum" / "tvsum_val_release.jsonl", 2),
    }


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz-readers")


def _file(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# --- annotations (training data) ---


@pytest.mark.parametrize(("layout", "fmt"), [("qvh_train", None), ("youtube", None), ("tvsum", "tvsum")])
@fuzz(ci_examples=25)
@given(data=st.data())
def test_annotation_readers(
    rows: dict, scratch: Path, layout: str, fmt: str | None, data: st.DataObject
) -> None:
    from readcli.data.readers import load_annotations

    path = _file(scratch, f"{layout}.jsonl", data.draw(mutated_jsonl(rows[layout])))
    outcome(lambda: load_annotations(path, fmt=fmt))


def test_a_valid_annotation_file_loads(rows: dict, scratch: Path) -> None:
    from readcli.data.readers import load_annotations

    path = _file(scratch, "valid.jsonl", "".join(dumps(r) + "\n" for r in rows["qvh_train"]).encode())
    assert outcome(lambda: load_annotations(path)) == "ok"


# --- evaluate: predictions and ground truth ---


@fuzz(ci_examples=30)
@given(data=st.data(), side=st.sampled_from(["preds", "gt"]))
def test_qvhighlights_evaluation(rows: dict, scratch: Path, data: st.DataObject, side: str) -> None:
    from readcli.evaluation import qvhighlights_report, read_jsonl

    preds = rows["qvh_preds"]
    gt = [g for g in read_all_val(rows) if g["qid"] in {p["qid"] for p in preds}] or rows["qvh_val"]
    pred_bytes = data.draw(mutated_jsonl(preds)) if side == "preds" else _jsonl(preds)
    gt_bytes = data.draw(mutated_jsonl(gt)) if side == "gt" else _jsonl(gt)
    pred_file, gt_file = _file(scratch, "p.jsonl", pred_bytes), _file(scratch, "g.jsonl", gt_bytes)
    outcome(lambda: qvhighlights_report(read_jsonl(pred_file), read_jsonl(gt_file)))


def read_all_val(rows: dict) -> list[dict[str, Any]]:
    if "_val_all" not in rows:  # read once per module
        rows["_val_all"] = read_jsonl(_VAL, 1550) if _VAL.is_file() else rows["qvh_val"]
    return rows["_val_all"]


_VAL = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "qvhighlights" / "highlight_val_release.jsonl"
)


def _jsonl(items: list[dict[str, Any]]) -> bytes:
    return "".join(dumps(r) + "\n" for r in items).encode()


@pytest.mark.parametrize("dataset", ["youtube", "tvsum"])
@fuzz(ci_examples=20)
@given(data=st.data(), side=st.sampled_from(["preds", "gt"]))
def test_highlight_evaluation(
    rows: dict, scratch: Path, dataset: str, data: st.DataObject, side: str
) -> None:
    from readcli.evaluation import read_jsonl, tvsum_top5_map, youtube_highlight_map

    gt = rows[dataset]
    clips = (lambda r: len(r["match"])) if dataset == "youtube" else (lambda r: len(r["label"]))
    preds = [{"qid": r["qid"], "pred_saliency_scores": [0.5] * clips(r)} for r in gt]
    pred_bytes = data.draw(mutated_jsonl(preds)) if side == "preds" else _jsonl(preds)
    gt_bytes = data.draw(mutated_jsonl(gt)) if side == "gt" else _jsonl(gt)
    pred_file, gt_file = _file(scratch, "hp.jsonl", pred_bytes), _file(scratch, "hg.jsonl", gt_bytes)
    metric = youtube_highlight_map if dataset == "youtube" else tvsum_top5_map
    outcome(lambda: metric(read_jsonl(pred_file), read_jsonl(gt_file)))


# --- extract --queries, dataset.json, shard manifests, feature metadata ---


@fuzz(ci_examples=25)
@given(data=st.data())
def test_queries_reader(scratch: Path, data: st.DataObject) -> None:
    from readcli.features.queries import read_queries

    good = [{"qid": 7, "query": "a dog runs"}, {"qid": "q-8", "query": "two cats"}]
    path = _file(scratch, "queries.jsonl", data.draw(mutated_jsonl(good)))
    outcome(lambda: read_queries(path))


MANIFEST = {
    "format": "qvhighlights", "video_streams": [{"name": "clip", "dim": 4, "l2_normalize": True}],
    "clip_len": 2.0, "tef": True, "normalize_text": True, "text_dim": 3, "max_v_l": 75, "max_q_l": 32,
    "splits": {"train": "train.jsonl"},
}  # fmt: skip


@fuzz(ci_examples=25)
@given(data=st.data())
def test_dataset_manifest_reader(rows: dict, scratch: Path, data: st.DataObject) -> None:
    from readcli.data.layout import open_layout

    root = scratch / "dataset"
    for sub in ("video_features/clip", "text_features"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    _file(root, "train.jsonl", _jsonl(rows["qvh_train"]))
    _file(root, "dataset.json", data.draw(mutated_json(MANIFEST)))
    outcome(lambda: open_layout(root))


@fuzz(ci_examples=15)
@given(data=st.data())
def test_shard_manifest_and_metadata_readers(scratch: Path, data: st.DataObject) -> None:
    from readcli.features.manifest import read_manifests
    from readcli.features.metadata import read_metadata

    manifest = {
        "format": 1, "shard": "0/2", "encoder": {"model": "ViT-B-32"}, "videos": ["a"], "queries": [],
        "items": [{"kind": "video", "name": "a", "status": "done", "reason": None}],
    }  # fmt: skip
    folder = scratch / "extract-out"
    (folder / "shards").mkdir(parents=True, exist_ok=True)
    damaged = data.draw(mutated_json(manifest))
    _file(folder / "shards", "shard-0-of-2.json", damaged)
    outcome(lambda: read_manifests(folder))
    meta = _file(scratch, "a.json", damaged)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_metadata(meta) is None or isinstance(read_metadata(meta), dict)


# --- bundles and backbone configs ---


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from readcli.adapters.bundle import CONFIG_FILE, save_bundle
    from readcli.adapters.inject import inject
    from readcli.adapters.settings import method_settings
    from readcli.backbones.moment_detr.config import tiny_moment_detr_config
    from readcli.backbones.registry import build_backbone

    folder = tmp_path_factory.mktemp("bundle")
    model = build_backbone(tiny_moment_detr_config())
    inject(model, method_settings("read", bottleneck=4))
    save_bundle(model, folder, backbone_name="tiny", task="tlg", extra_config={"feature_spec": {}})
    return folder, json.loads((folder / CONFIG_FILE).read_text())


@fuzz(ci_examples=30)
@given(data=st.data())
def test_bundle_reader(bundle: tuple[Path, dict[str, Any]], scratch: Path, data: st.DataObject) -> None:
    from readcli.adapters.bundle import CONFIG_FILE, WEIGHTS_FILE, load_bundle, read_bundle_config
    from readcli.backbones.moment_detr.config import tiny_moment_detr_config
    from readcli.backbones.registry import build_backbone

    folder = scratch / "bundle"
    folder.mkdir(exist_ok=True)
    (folder / WEIGHTS_FILE).write_bytes((bundle[0] / WEIGHTS_FILE).read_bytes())
    _file(folder, CONFIG_FILE, data.draw(mutated_json(bundle[1])))
    if outcome(lambda: read_bundle_config(folder)) == "ok":  # then loading must hold the promise too
        outcome(lambda: load_bundle(build_backbone(tiny_moment_detr_config()), folder))


@fuzz(ci_examples=25)
@given(data=st.data())
def test_backbone_configs(shared_data: Path, scratch: Path, data: st.DataObject) -> None:
    from readcli.backbones.moment_detr.config import MomentDETRConfig
    from readcli.backbones.umt.config import UMTConfig, tiny_umt_config

    opt = json.loads((shared_data / "moment_detr" / "clip_only_opt.json").read_text())
    path = _file(scratch, "opt.json", data.draw(mutated_json(opt)))
    outcome(lambda: MomentDETRConfig.from_opt_json(path))
    umt = data.draw(mutated(tiny_umt_config().to_dict()))
    outcome(lambda: UMTConfig.from_dict(umt) if isinstance(umt, dict) else None)


# --- feature arrays ---


@fuzz(ci_examples=40)
@given(
    array=feature_arrays(width=8),
    suffix=st.sampled_from([".npz", ".npy"]),
    key=st.sampled_from(["features", "other"]),
)
def test_feature_file_reader(scratch: Path, array: np.ndarray, suffix: str, key: str) -> None:
    from readcli.features.store import load_feature_array

    path = scratch / f"f{suffix}"
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if suffix == ".npz":
            np.savez(buffer, **{key: array})
        else:
            np.save(buffer, array, allow_pickle=True)  # a pickled object array must still be refused
    path.write_bytes(buffer.getvalue())
    result = outcome(lambda: load_feature_array(path, "features", expected_dim=8))
    if result == "ok":  # accepted means: a real float (rows, 8) array of finite, bounded values
        loaded = load_feature_array(path, "features", expected_dim=8)
        assert loaded.dtype == np.float32 and loaded.ndim == 2 and np.isfinite(loaded).all()


@fuzz(ci_examples=20)
@given(data=st.data(), suffix=st.sampled_from([".npz", ".npy"]))
def test_damaged_feature_file_reader(scratch: Path, data: st.DataObject, suffix: str) -> None:
    from readcli.features.store import load_feature_array

    buffer = io.BytesIO()
    array = np.ones((3, 8), dtype=np.float32)
    np.savez(buffer, features=array) if suffix == ".npz" else np.save(buffer, array)
    raw = buffer.getvalue()
    damage = data.draw(st.sampled_from(["truncate", "flip", "random", "append"]))
    if damage == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif damage == "flip":
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :]
    elif damage == "random":
        raw = data.draw(st.binary(max_size=600))
    else:
        raw = raw + data.draw(st.binary(min_size=1, max_size=64))
    path = _file(scratch, f"d{suffix}", raw)
    outcome(lambda: load_feature_array(path, "features"))


# --- the JSON parser itself ---


@fuzz(ci_examples=40)
@given(data=st.data())
def test_json_parser(data: st.DataObject) -> None:
    from readcli.records import parse_json

    text = data.draw(
        st.one_of(
            json_values.map(dumps),
            st.text(max_size=200),
            damaged_text(dumps({"a": [1, 2, {"b": None}]})).map(lambda b: b.decode("utf-8", "replace")),
        )
    )
    outcome(lambda: parse_json(text, "f.json"))
