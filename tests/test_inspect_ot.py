"""`readcli inspect-ot`: output, --json, --png, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from readcli.cli import app
from readcli.pipelines.inspect_ot import InspectOTRequest, run

ot = pytest.importorskip("ot")
runner = CliRunner()


def _write(tmp_path: Path, n_v: int = 20, n_l: int = 6, d: int = 32, seed: int = 0) -> tuple[Path, Path]:
    g = np.random.default_rng(seed)
    text = g.standard_normal((n_l, d)).astype(np.float32)
    video = text[g.integers(0, n_l, n_v)] + g.standard_normal((n_v, d)).astype(np.float32)
    video_path, text_path = tmp_path / "video.npz", tmp_path / "qid1.npz"
    np.savez(video_path, features=video)
    np.savez(text_path, last_hidden_state=text)
    return video_path, text_path


def _args(video: Path, text: Path, *extra: str) -> list[str]:
    return ["inspect-ot", "--video-features", str(video), "--text-features", str(text), *extra]


def test_prints_distance_heatmap_and_top_pairs(tmp_path: Path) -> None:
    video, text = _write(tmp_path)
    result = runner.invoke(app, _args(video, text, "--top", "3"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "distance" in out and "mass 0.5" in out and "tau 0.05" in out and "iterations" in out
    assert "6 tokens (rows) x 20 clips" in out
    assert any(shade in out for shade in "▒▓█")
    assert "top aligned pairs" in out
    best = run(InspectOTRequest(video, text, top_k=3)).top_pairs
    assert len(best) == 3 and best[0].weight >= best[1].weight >= best[2].weight > 0
    assert f"{best[0].weight:.5f}" in out


def test_json_has_the_documented_keys_and_pots_distance(tmp_path: Path) -> None:
    video, text = _write(tmp_path)
    result = runner.invoke(app, _args(video, text, "--json", "--mass", "0.3", "--tau", "0.1"))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"distance", "mass", "tau", "iterations", "plan", "plan_axes", "plan_shape", "tokens",
                        "published_weights", "weights"}  # fmt: skip
    assert doc["plan_axes"] == ["clip", "token"] and doc["plan_shape"] == [20, 6]  # plan[clip][token]
    assert doc["tokens"] is None and doc["published_weights"] is None  # files without metadata
    assert doc["mass"] == 0.3 and doc["tau"] == 0.1 and doc["iterations"] > 0
    plan = np.array(doc["plan"])
    assert plan.shape == (20, 6)
    v = np.load(video)["features"].astype(np.float64)
    t = np.load(text)["last_hidden_state"].astype(np.float64)
    cost = (
        1 - (v / np.linalg.norm(v, axis=1, keepdims=True)) @ (t / np.linalg.norm(t, axis=1, keepdims=True)).T
    )
    reference = ot.partial.entropic_partial_wasserstein(
        np.full(20, 1 / 20), np.full(6, 1 / 6), cost, 0.1, m=0.3
    )
    assert abs(doc["distance"] - (reference * cost).sum()) < 1e-5
    np.testing.assert_allclose(plan, reference, atol=1e-5)


def test_png_is_written_atomically(tmp_path: Path) -> None:
    video, text = _write(tmp_path)
    target = tmp_path / "out" / "plan.png"
    result = runner.invoke(app, _args(video, text, "--png", str(target), "--json"))
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in target.parent.iterdir()] == ["plan.png"]  # no temporary left behind
    json.loads(result.stdout)  # --png does not disturb --json


def test_long_videos_are_pooled_to_the_terminal(tmp_path: Path) -> None:
    video, text = _write(tmp_path, n_v=250, n_l=4)
    result = runner.invoke(app, _args(video, text))
    assert result.exit_code == 0, result.output
    assert "3 per character" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line[:4].strip().isdigit()]
    assert len(rows) == 4 and all(len(line) <= 4 + 100 for line in rows)


def _bad_files(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    video, text = _write(tmp_path)
    if kind == "missing":
        return tmp_path / "nope.npz", text
    if kind == "wrong-key":
        np.savez(text, features=np.ones((6, 32), dtype=np.float32))
    elif kind == "wrong-dim":
        np.savez(text, last_hidden_state=np.ones((6, 16), dtype=np.float32))
    elif kind == "nan":
        bad = np.load(video)["features"]
        bad[3, 4] = np.nan
        np.savez(video, features=bad)
    elif kind == "garbage":
        video.write_bytes(b"not a zip")
    return video, text


@pytest.mark.parametrize(
    ("kind", "extra", "needle"),
    [
        ("missing", [], "feature file not found"),
        ("wrong-key", [], "no key 'last_hidden_state' (keys present: features)"),
        ("wrong-dim", [], "feature dimension 16, expected 32"),
        ("nan", [], "contains 1 NaN or inf values"),
        ("garbage", [], "not a readable numpy feature file"),
        ("ok", ["--tau", "0"], "--tau 0.0 is invalid"),
        ("ok", ["--tau", "-1"], "--tau -1.0 is invalid"),
        ("ok", ["--tau", "nan"], "--tau nan is invalid"),
        ("ok", ["--mass", "0"], "--mass 0.0 is out of range: use a fraction in (0, 1]"),
        ("ok", ["--mass", "1.5"], "--mass 1.5 is out of range"),
        ("ok", ["--top", "-2"], "--top -2 is invalid"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path: Path, kind: str, extra: list[str], needle: str) -> None:
    video, text = _bad_files(tmp_path, kind)
    result = runner.invoke(app, _args(video, text, *extra))
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert "Traceback" not in result.output


def test_moment_detr_inputs_from_the_parity_file(shared_data: Path, tmp_path: Path) -> None:
    """Real Moment-DETR inputs: 514-d video rows (CLIP + temporal endpoints) do not match 512-d text;
    the CLIP part does."""
    arrays = np.load(shared_data / "moment_detr" / "parity_outputs.npz")
    video, text = (
        arrays["src_vid"][1][arrays["src_vid_mask"][1] > 0],
        arrays["src_txt"][1][arrays["src_txt_mask"][1] > 0],
    )
    np.savez(tmp_path / "v514.npz", features=video)
    np.savez(tmp_path / "v512.npz", features=video[:, :512])
    np.savez(tmp_path / "t.npz", last_hidden_state=text)
    bad = runner.invoke(app, _args(tmp_path / "v514.npz", tmp_path / "t.npz"))
    assert bad.exit_code == 1 and "feature dimension 512, expected 514" in bad.stderr
    good = runner.invoke(app, _args(tmp_path / "v512.npz", tmp_path / "t.npz", "--json"))
    assert good.exit_code == 0, good.output
    assert np.array(json.loads(good.stdout)["plan"]).shape == (60, 7)
