"""The catalogue, continued: every record, array and output case of issue 19, one table, one contract.

The cases are the tracebacks and the silent acceptances a mutation run found (docs/reliability.md,
"Records, arrays and outputs"). Each runs the CLI in this process, with Python warnings turned into
errors (a NumPy overflow or cast warning must not reach the terminal), and asserts what
tests/test_reliability.py asserts: exit 1, one `error:` line naming the value and what is valid, no
traceback, the scratch folder unchanged, no temporary file left, no code run by a pickle.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_reliability as catalogue
from reliability_inputs import read_jsonl, write_jsonl
from test_reliability import Case, _eval, _extract, _ft, _ground, _ot, _read_only, _snapshot, runner

from readcli.adapters.bundle import CONFIG_FILE
from readcli.cli import app

# the catalogue's inputs (videos, backbones, bundles, the grounding folder) and its private cache
world = catalogue.world
_private_cache = catalogue._private_cache

DEEP = "[" * 200_000 + "]" * 200_000

# fmt: off
CASES = [
    # --- tracebacks: JSON nested 200,000 deep, in every JSON reader ---
    Case("deep-json-preds", _eval("{deep}"), ("deep.jsonl:1", "nested deeper than 64")),
    Case("deep-json-gt", _eval("{preds}", "{deep}"), ("deep.jsonl:1", "nested deeper than 64")),
    Case("deep-json-train", _ft(data="{deep_train}"), ("train.jsonl:1", "nested deeper than 64")),
    Case("deep-json-dataset", _ft(data="{deep_manifest}"), ("dataset.json", "nested deeper than 64")),
    Case("deep-json-bundle", _ground("{one_frame}", "--adapter", "{bundle_deep}"),
         ("adapter_config.json", "nested deeper than 64")),
    Case("deep-json-queries", _extract("--queries", "{deep}", "--out", "{scratch}/f"),
         ("deep.jsonl:1", "nested deeper than 64")),
    # --- tracebacks: numbers and files ---
    Case("gt-duration-1e300", _eval("{preds}", "{gt_duration_huge}"),
         ("gt_duration_huge.jsonl:1", "'duration' = 1e+300", "less than or equal to 86400")),
    Case("npz-member-not-npy", _ot(video="{member_not_npy}"),
         ("member_not_npy.npz", "not an .npy array")),
    Case("png-is-a-directory-inspect-ot", _ot("{video_npz}", "{text_npz}", "--png", "{scratch}"),
         ("--png", "is a directory", "give a file path")),
    Case("png-is-a-directory-ground", _ground("{one_frame}", "--png", "{scratch}"),
         ("--png", "is a directory", "give a file path")),
    Case("png-not-writable-ground", _ground("{one_frame}", "--png", "{scratch}/curve.png"),
         ("curve.png", "not writable", "writable folder"), prepare="read-only"),
    Case("png-under-a-file-inspect-ot", _ot("{video_npz}", "{text_npz}", "--png", "{scratch}/out/p.png"),
         ("p.png", "is not a folder"), prepare="file"),
    Case("tau-1e-300", _ot("{video_npz}", "{text_npz}", "--tau", "1e-300"),
         ("--tau 1e-300", "within [1e-06, 1e+06]")),
    Case("bundle-bottleneck-10-12", _ground("{one_frame}", "--adapter", "{bundle_huge_k}"),
         ("bottleneck k = 1000000000000", "<= 4096")),
    Case("extract-symlink-loop", _extract("{loop}", "--out", "{scratch}/f"),
         ("loop", "symbolic link loop")),
    Case("queries-random-bytes", _extract("--queries", "{random}", "--out", "{scratch}/f"),
         ("random.jsonl", "not UTF-8")),
    # --- accepted without a word, or with a misleading word ---
    Case("preds-reversed-window", _eval("{preds_reversed}"),
         ("preds_reversed.jsonl:1", "pred_relevant_windows[0]", "start <= end")),
    Case("preds-negative-window", _eval("{preds_negative}"),
         ("preds_negative.jsonl:1", "pred_relevant_windows[0][0]' = -4", "greater than or equal to 0")),
    Case("preds-beyond-the-video", _eval("{preds_beyond}"),
         ("preds_beyond.jsonl:1", "ends past the video", "max(duration, 150 s)")),
    Case("preds-1e308-window", _eval("{preds_huge}"),
         ("preds_huge.jsonl:1", "1e+308", "less than or equal to 86400")),
    Case("gt-three-number-window", _eval("{preds}", "{gt_three}"),
         ("gt_three.jsonl:1", "relevant_windows[0]", "at most 2 items")),
    Case("gt-negative-window", _eval("{preds}", "{gt_negative}"),
         ("gt_negative.jsonl:1", "relevant_windows[0][0]' = -2", "greater than or equal to 0")),
    Case("gt-duration-negative", _eval("{preds}", "{gt_duration_negative}"),
         ("gt_duration_negative.jsonl:1", "'duration' = -10", "greater than 0")),
    Case("gt-duration-a-string", _eval("{preds}", "{gt_duration_text}"),
         ("gt_duration_text.jsonl:1", "'duration' = 'x'", "valid number")),
    Case("train-null-query", _ft(data="{null_query}"),
         ("train.jsonl:1", "'query' = None", "valid string")),
    Case("features-complex", _ot(video="{complex}"), ("complex.npz", "complex128", "real floating type")),
    Case("features-float64-1e300", _ot(video="{f64_huge}"), ("f64_huge.npz", "magnitude 1e+300")),
    Case("features-float32-3e38", _ot(text="{f32_huge}"), ("f32_huge.npz", "magnitude 3e+38")),
    Case("features-string-dtype", _ot(video="{strings}"), ("strings.npz", "<U", "real floating type")),
    Case("train-saliency-1e308", _ft(data="{saliency_huge}"),
         ("train.jsonl:1", "saliency_scores[0][0]' = 1e+308", "less than or equal to 4")),
    Case("manifest-tef-yes", _ft(data="{tef_yes}"),
         ("dataset.json", "'tef' = 'yes'", "valid boolean")),
    Case("queries-qid-1.5", _extract("--queries", "{qid_float}", "--out", "{scratch}/f"),
         ("qid_float.jsonl:1", "'qid' = 1.5", "integer or a plain file name")),
    Case("queries-qid-escapes", _extract("--queries", "{qid_escape}", "--out", "{scratch}/f"),
         ("qid_escape.jsonl:1", "'qid' = '../../x'", "plain file name")),
    Case("train-vid-escapes", _ft(data="{vid_escape}"),
         ("train.jsonl:1", "'vid' = '../../../../etc/x'", "plain file name")),
]
# fmt: on


def _data_variant(world: dict[str, Path], name: str, edit: Any) -> Path:
    """A copy of the grounding folder with train.jsonl's first row (or dataset.json) changed."""
    folder = world["root"] / name
    shutil.copytree(world["data"], folder)
    edit(folder)
    return folder


def _edit_first_row(**changes: Any) -> Any:
    def edit(folder: Path) -> None:
        rows = read_jsonl(folder / "train.jsonl", 100)
        rows[0] = {**rows[0], **changes}
        write_jsonl(folder / "train.jsonl", rows)

    return edit


@pytest.fixture(scope="module")
def hostile(world: dict[str, Path]) -> dict[str, Path]:
    root = world["root"] / "hostile"
    root.mkdir()
    made: dict[str, Path] = {}

    def text(name: str, content: str | bytes) -> None:
        made[name.split(".")[0]] = root / name
        data = content.encode() if isinstance(content, str) else content
        (root / name).write_bytes(data)

    text("deep.jsonl", DEEP + "\n")
    text("random.jsonl", np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    text("qid_float.jsonl", '{"qid": 1.5, "query": "a dog"}\n')
    text("qid_escape.jsonl", '{"qid": "../../x", "query": "a dog"}\n')
    preds = read_jsonl(world["gt"].parent / "dup.jsonl", 5)  # five sample predictions
    gt = read_jsonl(world["gt"], 5)
    made["preds"] = write_jsonl(root / "preds.jsonl", preds)
    for name, windows in {
        "preds_reversed": [[10.0, 4.0, 0.9]], "preds_negative": [[-4.0, 4.0, 0.9]],
        "preds_beyond": [[160.0, 170.0, 0.9]], "preds_huge": [[0.0, 1e308, 0.9]],
    }.items():  # fmt: skip
        made[name] = write_jsonl(
            root / f"{name}.jsonl", [{**preds[0], "pred_relevant_windows": windows}, *preds[1:]]
        )
    for name, change in {
        "gt_three": {"relevant_windows": [[0, 2, 4]]}, "gt_negative": {"relevant_windows": [[-2, 4]]},
        "gt_duration_negative": {"duration": -10}, "gt_duration_text": {"duration": "x"},
        "gt_duration_huge": {"duration": 1e300},
    }.items():  # fmt: skip
        made[name] = write_jsonl(root / f"{name}.jsonl", [{**gt[0], **change}, *gt[1:]])
    made["deep_train"] = _data_variant(
        world, "deep_train", lambda f: (f / "train.jsonl").write_text(DEEP + "\n")
    )
    made["deep_manifest"] = _data_variant(
        world, "deep_manifest", lambda f: (f / "dataset.json").write_text(DEEP)
    )
    made["tef_yes"] = _data_variant(
        world, "tef_yes", lambda f: (f / "dataset.json").write_text(json.dumps({"tef": "yes"}))
    )
    made["null_query"] = _data_variant(world, "null_query", _edit_first_row(query=None))
    made["saliency_huge"] = _data_variant(
        world, "saliency_huge", _edit_first_row(saliency_scores=None)
    )  # replaced just below, keeping the clip count
    rows = read_jsonl(made["saliency_huge"] / "train.jsonl", 100)
    rows[0]["saliency_scores"] = [[1e308, 1, 1]] + [[1, 1, 1]] * (len(rows[0]["relevant_clip_ids"]) - 1)
    write_jsonl(made["saliency_huge"] / "train.jsonl", rows)
    made["vid_escape"] = _data_variant(world, "vid_escape", _edit_first_row(vid="../../../../etc/x"))
    made.update(_arrays(root))
    made.update(_bundles(world, root))
    made["loop"] = root / "loop.mp4"
    os.symlink(made["loop"], made["loop"])
    return made


def _arrays(root: Path) -> dict[str, Path]:
    base = np.random.default_rng(0).standard_normal((20, 32))
    arrays = {
        "complex": ("features", base + 1j * base),
        "f64_huge": ("features", np.where(np.arange(base.size).reshape(base.shape) == 5, 1e300, base)),
        "f32_huge": ("last_hidden_state", np.full((6, 32), 3e38, dtype=np.float32)),
        "strings": ("features", base.astype(str)),
    }
    made = {}
    for name, (key, array) in arrays.items():
        np.savez(root / f"{name}.npz", **{key: array})
        made[name] = root / f"{name}.npz"
    import zipfile

    with zipfile.ZipFile(root / "member_not_npy.npz", "w") as archive:
        archive.writestr("features.npy", b"not an array at all")
    made["member_not_npy"] = root / "member_not_npy.npz"
    return made


def _bundles(world: dict[str, Path], root: Path) -> dict[str, Path]:
    made = {}
    for name, edit in {
        "bundle_deep": lambda config: DEEP,
        "bundle_huge_k": lambda config: json.dumps(
            {**config, "method": {**config["method"], "bottleneck": 10**12}}
        ),
    }.items():  # fmt: skip
        folder = root / name
        shutil.copytree(world["bundle_extra"], folder)
        config = json.loads((folder / CONFIG_FILE).read_text())
        (folder / CONFIG_FILE).write_text(edit(config))
        made[name] = folder
    return made


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_records_arrays_and_outputs_keep_the_promise(
    case: Case,
    world: dict[str, Path],
    hostile: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    _private_cache: Path,
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if case.prepare == "file":
        (scratch / "out").write_text("a file, not a folder\n")
    names = {**{k: str(v) for k, v in {**world, **hostile}.items()}, "scratch": str(scratch)}
    args = [a.format(**names) for a in case.args]
    before = _snapshot(scratch)
    inputs = {k: _snapshot(v) if v.is_dir() else v.read_bytes() for k, v in hostile.items() if k != "loop"}
    read_only = _read_only(scratch, monkeypatch) if case.prepare == "read-only" else contextlib.nullcontext()
    with read_only, warnings.catch_warnings():
        warnings.simplefilter("error")  # no library warning may reach the terminal
        result = runner.invoke(app, args)
    assert result.exit_code == case.code, (result.exit_code, result.output[-1000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in case.needles:
        assert needle.format(**names) in lines[0], (needle, lines[0])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert _snapshot(scratch) == before
    assert inputs == {
        k: _snapshot(v) if v.is_dir() else v.read_bytes() for k, v in hostile.items() if k != "loop"
    }
    assert not [p for p in world["root"].rglob("*.tmp") if p.is_file()]
    assert not world["marker"].exists()


def test_the_real_files_still_load_and_evaluate(shared_data: Path) -> None:
    from readcli.data.readers import load_annotations
    from readcli.evaluation import qvhighlights_report, read_jsonl, tvsum_top5_map, youtube_highlight_map

    qvh = shared_data / "qvhighlights"
    for name in ("highlight_train_release", "highlight_val_release", "highlight_test_with_gt"):
        assert load_annotations(qvh / f"{name}.jsonl")
    for folder, fmt in (("youtube_highlight", "youtube_highlight"), ("tvsum", "tvsum")):
        for split in ("train", "val"):
            assert load_annotations(shared_data / folder / f"{fmt}_{split}_release.jsonl")
    gt = read_jsonl(qvh / "highlight_val_release.jsonl")
    for preds in ("sample_val_preds", "clip_only_val_preds"):
        assert qvhighlights_report(read_jsonl(qvh / f"{preds}.jsonl"), gt)["brief"]["MR-full-mAP"] > 0
    yt = read_jsonl(shared_data / "youtube_highlight" / "youtube_highlight_val_release.jsonl")
    yt_preds = [{"qid": r["qid"], "pred_saliency_scores": [0.0] * len(r["match"])} for r in yt.rows]
    assert "mAP-avg" in youtube_highlight_map(yt_preds, yt)
    tv = read_jsonl(shared_data / "tvsum" / "tvsum_val_release.jsonl")
    tv_preds = [{"qid": r["qid"], "pred_saliency_scores": [0.0] * len(r["label"])} for r in tv.rows]
    assert "top5-mAP-avg" in tvsum_top5_map(tv_preds, tv)


def test_output_checks_create_nothing_and_name_the_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from readcli.errors import InvalidValueError, OutputFileError
    from readcli.fileio import check_output_dir, check_output_file

    assert (
        check_output_file(tmp_path / "new" / "deeper" / "p.png", "--png")
        == tmp_path / "new" / "deeper" / "p.png"
    )
    assert check_output_dir(tmp_path / "run" / "a", "--out") == tmp_path / "run" / "a"
    (tmp_path / "file").write_text("x")
    for call, needle in [
        (lambda: check_output_file(tmp_path, "--png"), "is a directory: give a file path"),
        (lambda: check_output_file(tmp_path / "file" / "p.png", "--png"), "file is not a folder"),
        (lambda: check_output_dir(tmp_path / "file", "--out"), "is a file: give a folder"),
        (lambda: check_output_dir(tmp_path / "file" / "sub", "--out"), "file is not a folder"),
    ]:
        with pytest.raises(InvalidValueError, match=needle):
            call()
    locked = tmp_path / "locked"
    locked.mkdir()
    with _read_only(locked, monkeypatch), pytest.raises(OutputFileError, match="locked is not writable"):
        check_output_file(locked / "p.png", "--png")
    with _read_only(locked, monkeypatch), pytest.raises(OutputFileError, match="locked is not writable"):
        check_output_dir(locked / "new-run", "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "locked"]  # nothing created
    assert not list(locked.iterdir())


@pytest.mark.parametrize("video_id", ["../../etc/x", "a\\b", "..", "v" * 201])
def test_how2_video_ids_are_plain_file_names(tmp_path: Path, video_id: str) -> None:
    from readcli.data.how2 import read_id_text_file
    from readcli.errors import InputFileError

    path = tmp_path / "tran.tok.txt"
    path.write_text(f"ok1 some words\n{video_id} more words\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"tran\.tok\.txt:2: video id .* must be a plain file name"):
        read_id_text_file(path)
