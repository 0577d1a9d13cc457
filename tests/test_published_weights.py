"""Results never pretend (issue 18, item 3): weights that are not the published ones, and that no adapter
was trained on, give one warning line and `published_weights: false` (readcli/weights/provenance.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CLIP  # noqa: E402  (tests/ is on sys.path)
from typer.testing import CliRunner

from readcli.cli import app
from readcli.weights import digest, provenance
from readcli.weights.catalog import own_files
from readcli.weights.provenance import (
    ADAPTER,
    PUBLISHED,
    UNPUBLISHED,
    UNVERIFIED,
    Provenance,
    WeightsCheck,
    check_backbone,
    check_clip,
    features_provenance,
    published_clip_digests,
)

OPENAI_B32 = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"  # models/clip-vit-b-32.json
runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path / "cache"))


def test_openai_clip_digest_is_published_and_any_other_file_is_not() -> None:
    assert OPENAI_B32 in published_clip_digests("ViT-B-32")
    good = check_clip("ViT-B-32", "path", "b32.pt", OPENAI_B32, adapter_digests=set())
    assert good.state == PUBLISHED
    other = check_clip("ViT-B-32", "path", "random.safetensors", "ab" * 32, adapter_digests=set())
    assert other.state == UNPUBLISHED and "abababababab" in other.why and "40d365715913" in other.why
    # open_clip's own openai download (the hub copy, a different file with no published digest)
    assert check_clip("ViT-B-32", "openai", "openai", "cd" * 32, adapter_digests=set()).state == PUBLISHED
    # an adapter trained on features made with these weights vouches for them
    assert check_clip("ViT-B-32", "path", "mine.pt", "ef" * 32, adapter_digests={"ef" * 32}).state == ADAPTER
    unknown = check_clip(TINY_CLIP, "path", "tiny.safetensors", "01" * 32, adapter_digests=set())
    assert unknown.state == UNPUBLISHED and f"no published {TINY_CLIP} weights" in unknown.why


def _card_entry_for(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend moment-detr-clip's card records `path`'s git blob id (the official file is not here)."""
    entry = replace(own_files("moment-detr-clip")[0], git_blob_sha1=digest.git_blob_sha1(path), sha256=None)
    monkeypatch.setattr(provenance, "_backbone_entries", lambda: [entry])


def test_backbone_file_is_published_only_with_the_cards_digest_and_digests_are_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    official, other = tmp_path / "model_best.ckpt", tmp_path / "other.ckpt"
    official.write_bytes(b"official bytes")
    other.write_bytes(b"other bytes")
    _card_entry_for(official, monkeypatch)
    hashed: list[Path] = []
    real = digest.git_blob_sha1
    monkeypatch.setattr(digest, "git_blob_sha1", lambda p: hashed.append(p) or real(p))
    assert check_backbone(str(official), adapter_trained=False).state == PUBLISHED
    found = check_backbone(str(other), adapter_trained=False)
    assert found.state == UNPUBLISHED and "matches no backbone preset's card" in found.why
    assert check_backbone(str(other), adapter_trained=False).state == UNPUBLISHED
    assert len(hashed) == 2  # once per file: the second look is the cache's (path, size, mtime)
    # an adapter whose fingerprint check passed was trained on these weights
    assert check_backbone(str(other), adapter_trained=True).state == ADAPTER


def test_presets_fresh_and_without_a_recorded_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_backbone("umt-s-scratch", adapter_trained=False).state == UNPUBLISHED
    umt = tmp_path / "umt_s.pth"
    umt.write_bytes(b"some umt checkpoint")
    monkeypatch.setenv("READCLI_UMT_S", str(umt))
    unverified = check_backbone("umt-s", adapter_trained=False)
    assert unverified.state == UNVERIFIED and "records no digest" in unverified.why
    saved = tmp_path / "saved"
    saved.mkdir()
    assert check_backbone(str(saved), adapter_trained=False).state == UNPUBLISHED


def test_published_is_false_true_or_null_and_the_warning_is_one_line() -> None:
    bad = WeightsCheck("CLIP", "r.pt", UNPUBLISHED, "sha256 ab…")
    good = WeightsCheck("backbone", "b.ckpt", PUBLISHED, "ok")
    assert Provenance((good, bad)).published is False
    assert Provenance((good, WeightsCheck("backbone", "a", ADAPTER, "fp"))).published is True
    assert Provenance((good, WeightsCheck("backbone", "u", UNVERIFIED, "none"))).published is None
    assert Provenance(()).published is None and Provenance(()).warning is None
    warning = Provenance((good, bad)).warning
    assert warning is not None and "\n" not in warning and "CLIP r.pt (sha256 ab…)" in warning
    assert "b.ckpt" not in warning  # only what is unpublished is named
    doc = Provenance((good, bad)).to_json()
    assert doc["published_weights"] is False and doc["weights"][1] == {
        "role": "CLIP", "file": "r.pt", "state": UNPUBLISHED, "why": "sha256 ab…"
    }  # fmt: skip


def test_feature_files_are_judged_by_the_weights_their_metadata_records(tmp_path: Path) -> None:
    made = tmp_path / "vid.npz"
    np.savez(made, features=np.zeros((2, 4), np.float32))
    meta = {"model": "ViT-B-32", "weights": "path", "weights_sha256": OPENAI_B32}
    made.with_suffix(".json").write_text(json.dumps(meta))
    assert features_provenance(made).published is True
    made.with_suffix(".json").write_text(json.dumps({**meta, "weights_sha256": "12" * 32}))
    assert features_provenance(made).published is False
    made.with_suffix(".json").unlink()
    assert features_provenance(made, None).checks == ()  # no metadata: nothing claimed


def test_inspect_ot_with_random_clip_warns_once_and_names_tokens_by_their_words(
    tiny_clip: Path, shared_data: Path
) -> None:
    video = shared_data / "videos" / "book.mp4"
    args = ["inspect-ot", "--video", str(video), "--query", "a person opens a book",
            "--clip-model", TINY_CLIP, "--clip-weights", str(tiny_clip), "--device", "cpu"]  # fmt: skip
    shown = runner.invoke(app, args, terminal_width=120)
    assert shown.exit_code == 0, shown.output
    (warning,) = [line for line in shown.stderr.splitlines() if line.startswith("warning:")]
    assert "not the published ones" in warning and str(tiny_clip) in warning
    assert "  1 a" in shown.stdout and "  3 opens" in shown.stdout and "  6 <end>" in shown.stdout
    doc = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert doc["tokens"] == ["<start>", "a", "person", "opens", "a", "book", "<end>"]
    assert doc["plan_axes"] == ["clip", "token"] and doc["plan_shape"] == [2, 7]
    assert doc["published_weights"] is False and doc["weights"][0]["role"] == "CLIP"


def test_text_models_are_checked_where_loading_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"not t5-base")
    monkeypatch.setenv("READCLI_T5_BASE", str(tmp_path))  # the local copy wins over the hub cache
    t5 = check_backbone("t5-base-vg", adapter_trained=False)
    assert t5.state == UNPUBLISHED and t5.file == str(tmp_path / "model.safetensors")
    monkeypatch.setenv("READCLI_BART_BASE", str(tmp_path))
    assert check_backbone("bart-base-vg", adapter_trained=False).state == UNVERIFIED  # card: no digest
