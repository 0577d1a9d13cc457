"""The catalogue of bad inputs (docs/reliability.md): every command, one table, one contract.

Each case runs the CLI in this process and asserts: exit code 1 (2 for a usage error), exactly one
line on stderr that names the bad value or file and says what would be valid, no traceback, and no
output left behind (the case's scratch folder is unchanged, no temporary file anywhere, and the
marker of the code-running checkpoint never appears). The inputs are built once for the module.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import typer
from conftest import TINY_CLIP  # noqa: E402  (tests/ is on sys.path)
from reliability_inputs import (
    bad_videos,
    evil_checkpoint,
    grounding_dir,
    read_jsonl,
    tiny_backbone,
    write_jsonl,
)
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import readcli.fileio as fileio
from readcli.adapters.bundle import CONFIG_FILE, WEIGHTS_FILE, save_bundle
from readcli.adapters.inject import inject
from readcli.adapters.settings import method_settings
from readcli.backbones.moment_detr.config import tiny_moment_detr_config
from readcli.backbones.registry import build_backbone, load_backbone
from readcli.cli import app
from readcli.cli.common import OneLineUsageGroup, error_boundary
from readcli.cli.progress import PROGRESS_LINE

runner = CliRunner()


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[
        str, ...
    ]  # "{key}" is replaced by the world's path of that name, "{scratch}" by the case's folder
    needles: tuple[str, ...]  # the error line holds each: the bad value or file, and what would be valid
    code: int = 1
    prepare: str | None = (
        None  # "file": {scratch}/out is a plain file; "read-only": {scratch} is not writable
    )


def _ground(video: str, *extra: str) -> tuple[str, ...]:
    return ("ground", video, "a dog", "--backbone", "{ground_backbone}", "--clip-model", TINY_CLIP,
            "--clip-weights", "{clip}", "--device", "cpu", *extra)  # fmt: skip


def _ot(video: str = "{video_npz}", text: str = "{text_npz}", *extra: str) -> tuple[str, ...]:
    return ("inspect-ot", "--video-features", video, "--text-features", text, *extra)


def _ft(
    *extra: str, data: str = "{data}", backbone: str = "{ft_backbone}", out: str = "{scratch}/run"
) -> tuple[str, ...]:
    return ("finetune", "--data", data, "--backbone", backbone, "--out", out, "--epochs", "1",
            "--device", "cpu", *extra)  # fmt: skip


def _eval(preds: str, gt: str = "{gt}") -> tuple[str, ...]:
    return ("evaluate", "--task", "tlg", "--preds", preds, "--gt", gt)


def _summarize(transcript: str) -> tuple[str, ...]:
    return ("summarize", "--transcript", transcript, "--video-features", "{video_npz}")


def _extract(*extra: str) -> tuple[str, ...]:
    return ("extract", *extra, "--clip-model", TINY_CLIP, "--clip-weights", "{clip}", "--device", "cpu")


# fmt: off
CASES = [
    # --- videos ---
    Case("video-missing", _ground("{missing}"), ("missing.mp4", "not found")),
    Case("video-empty", _ground("{empty}"), ("empty.mp4", "empty file (0 bytes)", "give a complete video")),
    Case("video-truncated", _ground("{truncated}"),
         ("truncated.mp4", "not a readable video", "give a complete video file")),
    Case("video-garbage", _ground("{garbage}"),
         ("garbage.mp4", "not a readable video", "give a complete video file")),
    Case("video-audio-only", _ground("{audio}"), ("audio.m4a", "no video stream", "give a file with video")),
    Case("video-is-a-directory", _ground("{novideos}"), ("novideos", "not a video file")),
    Case("directory-without-videos", _extract("{novideos}", "--out", "{scratch}/feats"),
         ("novideos", "no video files")),
    # --- queries ---
    Case("query-empty", ("ground", "{one_frame}", ""), ("query 1 ('')", "give at least one word")),
    Case("query-whitespace", ("ground", "{one_frame}", "dogs", "--query", " \t "),
         ("query 2 (' \\t ')", "give at least one word")),
    Case("query-whitespace-inspect-ot", ("inspect-ot", "--video", "{one_frame}", "--query", "   ",
         "--clip-model", TINY_CLIP, "--clip-weights", "{clip}", "--device", "cpu"),
         ("query", "is empty", "at least one word")),
    # --- transcripts ---
    Case("transcript-not-utf8", _summarize("{latin1}"), ("latin1.txt", "not UTF-8", "convert it to UTF-8")),
    Case("transcript-empty", _summarize("{blank}"), ("blank.txt", "is empty", "give the video's transcript")),
    Case("transcript-missing", _summarize("{missing_txt}"), ("nothing.txt", "not found")),
    # --- feature files ---
    Case("features-wrong-key", _ot(text="{wrong_key}"),
         ("wrong_key.npz", "'last_hidden_state'", "keys present: features")),
    Case("features-wrong-dimension", _ot(text="{narrow}"), ("narrow.npz", "dimension 16", "expected 32")),
    Case("features-nan", _ot(video="{nan}"), ("nan.npz", "NaN or inf", "finite")),
    Case("features-inf", _ot(text="{inf}"), ("inf.npz", "NaN or inf", "finite")),
    Case("features-zero-rows", _ot(video="{zero_rows}"), ("zero_rows.npz", "zero rows", "at least one row")),
    Case("features-garbage", _ot(video="{garbage}"), ("garbage.mp4", "not a readable numpy feature file")),
    # --- jsonl files ---
    Case("jsonl-broken-line", _eval("{broken}"), ("broken.jsonl:2", "not valid JSON")),
    Case("jsonl-missing-field", _eval("{no_windows}"),
         ("no_windows.jsonl:2", "missing field", "'pred_relevant_windows'")),
    Case("jsonl-duplicate-qid", _eval("{dup}"),
         ("dup.jsonl:6", "duplicate id 5342", "each qid must appear once")),
    Case("jsonl-other-qids", _eval("{other_qids}"),
         ("other_qids.jsonl", "gt.jsonl", "have no prediction: 2579", "one prediction for each")),
    Case("finetune-data-broken-line", _ft(data="{bad_data}"), ("train.jsonl:3", "not valid JSON")),
    # --- backbones, bundles, checkpoints ---
    Case("backbone-unknown-preset", _ft(backbone="moment-detr-nope"),
         ("moment-detr-nope", "moment-detr-clip")),
    Case("bundle-other-backbone", _ground("{one_frame}", "--adapter", "{bundle_other}"),
         ("made for another moment_detr", "hidden_dim: bundle '32', model '16'")),
    Case("bundle-missing-tensors", _ground("{one_frame}", "--adapter", "{bundle_missing}"),
         ("bundle_missing", "missing keys (1)")),
    Case("bundle-extra-tensors", _ground("{one_frame}", "--adapter", "{bundle_extra}"),
         ("bundle_extra", "unexpected keys (1) extra.tensor")),
    Case("bundle-truncated", _ground("{one_frame}", "--adapter", "{bundle_truncated}"),
         ("bundle_truncated", "truncated")),
    Case("checkpoint-not-a-checkpoint", _ground("{one_frame}", "--backbone", "{not_ckpt}"),
         ("not_a_checkpoint.ckpt",)),
    Case("checkpoint-runs-code-ground", _ground("{one_frame}", "--backbone", "{evil}"),
         ("evil.ckpt", "refused to unpickle")),
    Case("checkpoint-runs-code-finetune", _ft(backbone="{evil}"), ("evil.ckpt", "refused to unpickle")),
    # --- numbers out of range ---
    Case("tau-zero", _ot("{video_npz}", "{text_npz}", "--tau", "0"), ("--tau 0.0", "> 0")),
    Case("tau-negative-finetune", _ft("--tau", "-1"), ("tau", "-1.0", "> 0")),
    Case("mass-over-one", _ft("--mass", "1.5"), ("mass 1.5", "(0, 1]")),
    Case("mass-zero-inspect-ot", _ot("{video_npz}", "{text_npz}", "--mass", "0"), ("--mass 0.0", "(0, 1]")),
    Case("k-zero-bottleneck", _ft("-k", "0"), ("bottleneck k = 0", "positive integer")),
    Case("k-zero-top-k", _ground("{one_frame}", "--top-k", "0"), ("--top-k 0", ">= 1")),
    Case("learning-rate-negative", _ft("--lr", "-1"), ("--lr -1.0", "(0, 1]")),
    Case("batch-size-zero", _ft("--batch-size", "0"), ("--batch-size 0", ">= 1")),
    Case("batch-size-zero-extract", _extract("{one_frame}", "--out", "{scratch}/f", "--batch-size", "0"),
         ("--batch-size 0", "positive integer")),
    Case("shard-out-of-range", _extract("{one_frame}", "--out", "{scratch}/f", "--shard", "2/2"),
         ("--shard 2/2", "0..N-1")),
    Case("shard-not-a-fraction", _extract("{one_frame}", "--out", "{scratch}/f", "--shard", "two"),
         ("--shard 'two'", "I/N")),
    # --- outputs that cannot be written ---
    Case("out-is-a-file-finetune", _ft(out="{scratch}/out"), ("out", "not a directory"), prepare="file"),
    Case("out-is-a-file-extract", _extract("{one_frame}", "--out", "{scratch}/out"),
         ("out", "is a file", "give a folder"), prepare="file"),
    Case("out-not-writable-png", _ot("{video_npz}", "{text_npz}", "--png", "{scratch}/plan.png"),
         ("plan.png", "not writable", "writable folder"), prepare="read-only"),
    Case("out-not-writable-finetune", _ft(out="{scratch}"),
         ("run.json", "not writable", "writable folder"), prepare="read-only"),
    # --- usage errors: exit 2 ---
    Case("usage-not-a-number", _ot("{video_npz}", "{text_npz}", "--tau", "abc"),
         ("'--tau'", "valid number"), code=2),
    Case("usage-unknown-option", ("ground", "{one_frame}", "a dog", "--frobnicate"),
         ("--frobnicate", "readcli ground --help"), code=2),
    Case("usage-missing-option", ("evaluate", "--preds", "{gt}"), ("'--task'",), code=2),
    Case("unknown-task", ("evaluate", "--task", "xyz", "--preds", "{gt}"), ("'xyz'", "tlg, vls")),
]
# fmt: on


# --- the inputs ---


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, tiny_clip: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("world")
    paths: dict[str, Path] = {"clip": tiny_clip, "root": root}
    paths.update(bad_videos(root / "videos", shared_data / "videos" / "book.mp4"))
    (root / "novideos").mkdir()
    (root / "novideos" / "notes.txt").write_text("no videos here\n")
    paths["novideos"] = root / "novideos"
    paths["ground_backbone"] = tiny_backbone(
        root / "ground-backbone", v_feat_dim=514, t_feat_dim=512, hidden_dim=16
    )
    paths["ft_backbone"] = tiny_backbone(root / "ft-backbone")
    paths["data"] = grounding_dir(root / "data", shared_data)
    paths.update(_features(root))
    paths.update(_jsonl(root, shared_data))
    paths.update(_bundles(root, paths["ground_backbone"]))
    (root / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (root / "blank.txt").write_text("  \n\t\n")
    paths.update(latin1=root / "latin1.txt", blank=root / "blank.txt", missing_txt=root / "nothing.txt")
    paths["not_ckpt"] = root / "not_a_checkpoint.ckpt"
    paths["not_ckpt"].write_bytes(bytes(range(256)) * 8)
    paths["marker"] = root / "MARKER"
    paths["evil"] = evil_checkpoint(root / "evil.ckpt", paths["marker"])
    return paths


def _features(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    text = rng.standard_normal((6, 32)).astype(np.float32)
    video = text[rng.integers(0, 6, 20)] + rng.standard_normal((20, 32)).astype(np.float32)
    made = {
        "video_npz": ("features", video),
        "text_npz": ("last_hidden_state", text),
        "wrong_key": ("features", text),
        "narrow": ("last_hidden_state", text[:, :16]),
        "nan": ("features", np.where(np.arange(video.size).reshape(video.shape) == 7, np.nan, video)),
        "inf": ("last_hidden_state", np.where(np.arange(text.size).reshape(text.shape) == 3, np.inf, text)),
        "zero_rows": ("features", np.zeros((0, 32), dtype=np.float32)),
    }
    for name, (key, array) in made.items():
        np.savez(root / f"{name}.npz", **{key: array})
    return {name: root / f"{name}.npz" for name in made}


def _jsonl(root: Path, shared_data: Path) -> dict[str, Path]:
    qvh = shared_data / "qvhighlights"
    preds = read_jsonl(qvh / "sample_val_preds.jsonl", 5)
    gt_rows = read_jsonl(qvh / "highlight_val_release.jsonl", 400)
    wanted = {p["qid"] for p in preds}
    made = {"gt": write_jsonl(root / "gt.jsonl", [g for g in gt_rows if g["qid"] in wanted])}
    lines = [json.dumps(p) for p in preds]
    (root / "broken.jsonl").write_text("\n".join([lines[0], lines[1][:-7], *lines[2:]]) + "\n")
    made["broken"] = root / "broken.jsonl"
    missing = [dict(p) for p in preds]
    del missing[1]["pred_relevant_windows"]
    made["no_windows"] = write_jsonl(root / "no_windows.jsonl", missing)
    made["dup"] = write_jsonl(root / "dup.jsonl", [*preds, preds[2]])
    others = [g for g in gt_rows if g["qid"] not in wanted][:5]
    made["other_qids"] = write_jsonl(
        root / "other_qids.jsonl",
        [{**p, "qid": o["qid"], "vid": o["vid"]} for p, o in zip(preds, others, strict=True)],
    )
    bad = root / "bad-data"
    shutil.copytree(root / "data", bad)
    train_lines = (bad / "train.jsonl").read_text().splitlines()
    train_lines[2] = train_lines[2][: len(train_lines[2]) // 2]
    (bad / "train.jsonl").write_text("\n".join(train_lines) + "\n")
    made["bad_data"] = bad
    return made


def _bundles(root: Path, ground_backbone: Path) -> dict[str, Path]:
    other = build_backbone(tiny_moment_detr_config())
    inject(other, method_settings("read", bottleneck=4))
    save_bundle(
        other, root / "bundle_other", backbone_name="tiny", task="tlg", extra_config={"feature_spec": {}}
    )
    model = load_backbone(ground_backbone)
    inject(model, method_settings("read", bottleneck=4))
    made = {"bundle_other": root / "bundle_other"}
    for name in ("bundle_missing", "bundle_extra", "bundle_truncated"):
        made[name] = root / name
        save_bundle(
            model, made[name], backbone_name="tiny-514", task="tlg", extra_config={"feature_spec": {}}
        )
    tensors = load_file(made["bundle_missing"] / WEIGHTS_FILE)
    _rewrite(made["bundle_missing"], {k: v for i, (k, v) in enumerate(sorted(tensors.items())) if i != 0})
    _rewrite(made["bundle_extra"], {**tensors, "extra.tensor": torch.zeros(2)})
    data = (made["bundle_truncated"] / WEIGHTS_FILE).read_bytes()
    (made["bundle_truncated"] / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    return made


def _rewrite(bundle: Path, tensors: dict[str, torch.Tensor]) -> None:
    """New tensors with a config that vouches for them: only the tensor check can refuse the bundle."""
    save_file(tensors, str(bundle / WEIGHTS_FILE))
    data = (bundle / WEIGHTS_FILE).read_bytes()
    config = json.loads((bundle / CONFIG_FILE).read_text())
    config["weights"].update(blake2b=hashlib.blake2b(data, digest_size=32).hexdigest(), bytes=len(data))
    (bundle / CONFIG_FILE).write_text(json.dumps(config))


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("READCLI_CACHE", str(root))
    yield root
    patch.undo()


# --- the contract ---


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


@contextlib.contextmanager
def _read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`folder` cannot be written: by its mode, or (as root, whom modes do not stop) by refusing temps."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    real = tempfile.mkstemp

    def refuse(*args: Any, dir: Any = None, **kwargs: Any) -> Any:  # noqa: A002 (mkstemp's own name)
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise PermissionError(errno.EACCES, "Permission denied", str(folder))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(fileio.tempfile, "mkstemp", refuse)
    yield


def _case_params() -> list[Any]:
    return [pytest.param(c, id=c.name) for c in CASES]


@pytest.mark.parametrize("case", _case_params())
def test_bad_input_is_one_line_exit_code_and_leaves_nothing(
    case: Case, world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _private_cache: Path
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if case.prepare == "file":
        (scratch / "out").write_text("a file, not a folder\n")
    names = {**{k: str(v) for k, v in world.items()}, "scratch": str(scratch)}
    args = [a.format(**names) for a in case.args]
    before = _snapshot(scratch)
    with _read_only(scratch, monkeypatch) if case.prepare == "read-only" else contextlib.nullcontext():
        result = runner.invoke(app, args)
    assert result.exit_code == case.code, (result.exit_code, result.output)
    # off a terminal, plain progress lines (`ground: load 2/2 ...`) may come first (docs/reliability.md)
    lines = [t for t in result.stderr.strip().splitlines() if not PROGRESS_LINE.match(t)]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in case.needles:
        assert needle.format(**names) in lines[0], (needle, lines[0])
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    assert _snapshot(scratch) == before
    leftovers = [
        p for p in (*_private_cache.rglob("*"), *world["root"].rglob("*")) if p.name.endswith(".tmp")
    ]
    assert not leftovers
    assert not world["marker"].exists()


def test_the_catalogue_covers_every_command() -> None:
    assert len(CASES) >= 25
    commands = {c.args[0] for c in CASES}
    assert commands == {"ground", "extract", "finetune", "inspect-ot", "summarize", "evaluate"}


# --- inputs at the edge that are accepted ---


def test_a_one_frame_video_and_an_over_long_query_are_grounded_with_one_warning(
    world: dict[str, Path],
) -> None:
    words = " ".join(["word"] * 100)
    args = [a.format(**{k: str(v) for k, v in world.items()}) for a in _ground("{one_frame}", "--json")]
    args[2] = words
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # besides progress lines, the unpublished-weights warning (random CLIP): one line about the query
    (line,) = [t for t in result.stderr.splitlines() if t.startswith("warning: query")]
    assert "dropped its last 25 word pieces" in line
    (row,) = json.loads(result.stdout)
    assert row["query"] == words and len(row["pred_saliency_scores"]) == 1
    assert all(0 <= s < e <= row["duration"] + 1e-6 for s, e, _ in row["pred_relevant_windows"])


# --- usage errors, with the group the app should use ---


def test_one_line_usage_group_turns_usage_errors_into_one_line_exit_2() -> None:
    demo = typer.Typer(cls=OneLineUsageGroup, no_args_is_help=True)

    @demo.command()
    @error_boundary
    def ground(video: str, tau: float = 0.05) -> None:
        """Ground."""

    @demo.command()
    def other() -> None:
        """Other."""

    for args, needle in [
        (["ground", "v.mp4", "--tau", "abc"], "Invalid value for '--tau'"),
        (["ground", "--frob"], "No such option: --frob"),
        (["ground"], "Missing argument 'video'"),
        (["nosuch"], "No such command 'nosuch'"),
    ]:
        result = runner.invoke(demo, args)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and needle in line and "--help')" in line, line
    assert runner.invoke(demo, ["ground", "--help"]).exit_code == 0
    assert "Usage" in runner.invoke(demo, []).stdout  # no arguments: the help, as before
