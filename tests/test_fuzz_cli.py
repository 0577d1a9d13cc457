"""Property tests of the CLI commands that take files: the promise for bad input, end to end.

Every command runs in this process (typer's CliRunner) on inputs made from valid ones with one hostile
change (tests/fuzz_strategies.py). The property is the promise of docs/reliability.md: exit 0, or exit
1 or 2 with exactly one stderr line starting `error:`; never a traceback or a raw library warning; the
inputs are unchanged; a refused run leaves its scratch folder (where every output goes) as it was, so
no partial output and no new --out folder. Budgets: tests/hypothesis_profiles.py.
"""

from __future__ import annotations

import io
import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TINY_CLIP
from fuzz_strategies import dumps, feature_arrays, mutated_json, mutated_jsonl
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_profiles import fuzz, record_case
from reliability_inputs import grounding_dir, read_jsonl, tiny_backbone
from typer.testing import CliRunner

from readcli.cli import app
from readcli.cli.progress import PROGRESS_LINE

runner = CliRunner()
# what a raw library warning or a traceback looks like on stderr (progress lines off a terminal are
# readcli's own and may appear)
_RAW = re.compile(r"Warning\b|Traceback|^\s+File \"")


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))
    }


def keeps_promise(
    args: Sequence[str], inputs: Sequence[Path], scratch: Path, *, per_item: bool = False
) -> int:
    """Run the CLI and check the promise; return the exit code.

    `per_item`: the command reports item failures and goes on (extract): exit 1 after writing the
    other items' outputs is then valid, with one `error:` line per failed item."""
    before_inputs = {p: _snapshot(p) if p.is_dir() else p.read_bytes() for p in inputs}
    before = _snapshot(scratch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a library warning must not reach the user raw
        result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output, result.output[-2000:]
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output[-500:])
    # progress lines (off a terminal, docs/reliability.md) are not messages
    lines = [line for line in result.stderr.strip().splitlines() if not PROGRESS_LINE.match(line)]
    raw = [line for line in lines if _RAW.search(line) and not line.startswith("warning: ")]
    assert not raw, raw[:3]  # a library's warning or a traceback line, not readcli's own
    if result.exit_code != 0 and per_item and _snapshot(scratch) != before:  # items failed, others done
        assert any(line.startswith("error: ") for line in lines), lines[:5]
    elif result.exit_code != 0:
        assert len(lines) == 1 and lines[0].startswith("error: "), lines[:5]
        assert _snapshot(scratch) == before, "a refused run changed its output folder"
    for path, data in before_inputs.items():
        assert (_snapshot(path) if path.is_dir() else path.read_bytes()) == data, f"{path} changed"
    record_case("ok" if result.exit_code == 0 else f"exit {result.exit_code}")
    return result.exit_code


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("fuzz-cli")
    qvh = shared_data / "qvhighlights"
    preds = read_jsonl(qvh / "sample_val_preds.jsonl", 3)
    wanted = {p["qid"] for p in preds}
    gt = [g for g in read_jsonl(qvh / "highlight_val_release.jsonl", 1550) if g["qid"] in wanted]
    youtube = read_jsonl(shared_data / "youtube_highlight" / "youtube_highlight_val_release.jsonl", 2)
    return {"root": root, "preds": preds, "gt": gt, "youtube": youtube}


def _scratch(world: dict[str, Any], name: str) -> Path:
    folder = world["root"] / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(dumps(r) + "\n" for r in rows).encode()


@fuzz(ci_examples=25)
@given(data=st.data(), side=st.sampled_from(["preds", "gt"]))
def test_evaluate_qvhighlights(world: dict[str, Any], data: st.DataObject, side: str) -> None:
    folder = _scratch(world, "eval")
    preds, gt = folder / "preds.jsonl", folder / "gt.jsonl"
    preds.write_bytes(data.draw(mutated_jsonl(world["preds"])) if side == "preds" else _jsonl(world["preds"]))
    gt.write_bytes(data.draw(mutated_jsonl(world["gt"])) if side == "gt" else _jsonl(world["gt"]))
    out = _scratch(world, "eval-out")
    keeps_promise(["evaluate", "--task", "tlg", "--preds", preds, "--gt", gt, "--json"], [preds, gt], out)


@fuzz(ci_examples=10)
@given(data=st.data(), side=st.sampled_from(["preds", "gt"]))
def test_evaluate_youtube(world: dict[str, Any], data: st.DataObject, side: str) -> None:
    folder = _scratch(world, "eval-yt")
    rows = world["youtube"]
    pred_rows = [
        {"qid": r["qid"], "pred_saliency_scores": [0.1 * i for i in range(len(r["match"]))]} for r in rows
    ]
    preds, gt = folder / "preds.jsonl", folder / "gt.jsonl"
    preds.write_bytes(data.draw(mutated_jsonl(pred_rows)) if side == "preds" else _jsonl(pred_rows))
    gt.write_bytes(data.draw(mutated_jsonl(rows)) if side == "gt" else _jsonl(rows))
    args = ["evaluate", "--task", "tlg", "--dataset", "youtube", "--preds", preds, "--gt", gt]
    keeps_promise(args, [preds, gt], _scratch(world, "eval-yt-out"))


def _save(path: Path, key: str, array: np.ndarray) -> Path:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.savez(buffer, **{key: array}) if path.suffix == ".npz" else np.save(
            buffer, array, allow_pickle=True
        )
    path.write_bytes(buffer.getvalue())
    return path


@fuzz(ci_examples=25)
@given(
    video=feature_arrays(width=8),
    text=feature_arrays(width=8),
    tau=st.sampled_from([0.05, 0.05, 1e-300, 1e-7, 1e7, 0.0, -1.0]),
    mass=st.sampled_from([0.5, 0.5, 1.0, 0.0, 1.5]),
    png=st.sampled_from(["plan.png", "missing/plan.png", "dir", "file/plan.png"]),
)
def test_inspect_ot_feature_files(
    world: dict[str, Any], video: np.ndarray, text: np.ndarray, tau: float, mass: float, png: str
) -> None:
    folder = _scratch(world, "ot")
    v = _save(folder / "video.npz", "features", video)
    t = _save(folder / "text.npy", "last_hidden_state", text)
    out = _scratch(world, "ot-out")
    (out / "dir").mkdir()
    (out / "file").write_text("a file\n")
    args = ["inspect-ot", "--video-features", v, "--text-features", t, "--tau", str(tau), "--mass", str(mass),
            "--png", out / png, "--json"]  # fmt: skip
    if keeps_promise(args, [v, t], out) == 0:
        assert (out / png).is_file()


@pytest.fixture(scope="module")
def clip_world(world: dict[str, Any], tiny_clip: Path) -> dict[str, Any]:
    return {**world, "clip": tiny_clip}


@fuzz(ci_examples=12, long_share=0.2)
@given(data=st.data())
def test_extract_queries(clip_world: dict[str, Any], data: st.DataObject) -> None:
    folder = _scratch(clip_world, "queries")
    rows = [{"qid": 3, "query": "a dog runs"}, {"qid": "q-4", "query": "two cats sleep"}]
    queries = folder / "queries.jsonl"
    queries.write_bytes(data.draw(mutated_jsonl(rows)))
    out = _scratch(clip_world, "queries-out")
    args = ["extract", "--queries", queries, "--out", out / "feats", "--clip-model", TINY_CLIP,
            "--clip-weights", clip_world["clip"], "--device", "cpu"]  # fmt: skip
    if keeps_promise(args, [queries], out, per_item=True) == 0:
        assert list((out / "feats").glob("qid*.npz"))


@pytest.fixture(scope="module")
def finetune_world(world: dict[str, Any], shared_data: Path) -> dict[str, Any]:
    root = world["root"] / "ft"
    data = grounding_dir(root / "data", shared_data, train=4, val=2)
    backbone = tiny_backbone(root / "backbone")
    return {
        **world,
        "data": data,
        "backbone": backbone,
        "train": read_jsonl(data / "train.jsonl", 4),
        "manifest": {"video_streams": ["clip"], "tef": True, "clip_len": 2.0, "max_v_l": 75},
    }


@fuzz(ci_examples=6, long_share=0.05)
@given(data=st.data(), target=st.sampled_from(["train.jsonl", "dataset.json"]))
def test_finetune_data_folder(finetune_world: dict[str, Any], data: st.DataObject, target: str) -> None:
    folder = _scratch(finetune_world, "ft-data")
    shutil.copytree(finetune_world["data"], folder, dirs_exist_ok=True)
    if target == "train.jsonl":
        (folder / target).write_bytes(data.draw(mutated_jsonl(finetune_world["train"])))
    else:
        (folder / target).write_bytes(data.draw(mutated_json(finetune_world["manifest"])))
    out = _scratch(finetune_world, "ft-out")
    args = ["finetune", "--data", folder, "--backbone", finetune_world["backbone"], "--out", out / "run",
            "--epochs", "1", "--device", "cpu", "--batch-size", "4"]  # fmt: skip
    if keeps_promise(args, [folder], out) == 0:
        assert (out / "run" / "best").is_dir()
