"""UMT's audio stream end to end: audio_features/ -> items -> src_aud -> a UMT with audio, via the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from readcli.backbones.moment_detr.config import tiny_moment_detr_config
from readcli.backbones.registry import build_backbone, save_backbone
from readcli.backbones.umt.config import tiny_umt_config
from readcli.cli.app import app
from readcli.data import load_grounding_split
from readcli.data.collate import collate_moments
from readcli.features.store import save_feature_array

runner = CliRunner()
VIDEO_DIM, AUDIO_DIM, TEXT_DIM = 4, 3, 12  # raw features: no TEF for highlight datasets


def youtube_with_audio(root: Path, *, audio: bool = True) -> Path:
    """Two YouTube domains; the highlight shows in the audio (feature 0), the video is noise.

    Audio files carry one row more than the labels and video files one row fewer than the audio,
    so every item is cut to min(video, audio, labels) clips.
    """
    rng = np.random.default_rng(0)
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    for domain in ("dog", "skiing"):
        for split, count in (("train", 3), ("val", 2)):
            for i in range(count):
                match = [int(m) for m in rng.choice([0, 1], size=int(rng.integers(6, 9)))]
                match[0], match[1] = 1, 0
                qid = f"{domain}{split}{i}"
                rows[split].append({"qid": qid, "vid": qid, "query": domain, "duration": 2.0 * len(match),
                                    "domain": domain, "match": match})  # fmt: skip
                n = len(match)
                save_feature_array(root / "video_features" / "i3d" / f"{qid}.npz", "features",
                                   rng.normal(size=(n, VIDEO_DIM)))  # fmt: skip
                if audio:
                    sound = rng.normal(size=(n + 1, AUDIO_DIM))
                    sound[:n, 0] += 3.0 * np.asarray(match)
                    save_feature_array(root / "audio_features" / f"{qid}.npz", "features", sound)
                save_feature_array(root / "text_features" / f"qid{qid}.npz", "last_hidden_state",
                                   rng.normal(size=(2, TEXT_DIM)))  # fmt: skip
    for split, split_rows in rows.items():
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in split_rows))
    return root


def finetune(data: Path, backbone: Path, out: Path) -> list[str]:
    return ["finetune", "--task", "tlg", "--dataset", "youtube", "--domain", "all", "--data", str(data),
            "--backbone", str(backbone), "--method", "read", "--epochs", "1", "--batch-size", "2",
            "--device", "cpu", "--out", str(out)]  # fmt: skip


def test_audio_reaches_the_model_cut_and_padded_like_the_video(tmp_path: Path) -> None:
    data = youtube_with_audio(tmp_path / "data")
    split = load_grounding_split(data, "train", domain="dog")
    assert split.spec.audio is not None and split.spec.audio_dim == AUDIO_DIM and not split.spec.tef
    items = [split.dataset[i] for i in range(3)]
    batch = collate_moments(items)
    labels = [a.num_clips for a in split.dataset.annotations]
    assert batch.src_vid_mask.sum(1).tolist() == labels  # min(video n, audio n + 1, labels n) = n
    assert batch.src_aud is not None and batch.src_aud.shape == (3, max(labels), AUDIO_DIM)
    model = build_backbone(tiny_umt_config(v_feat_dim=VIDEO_DIM, a_feat_dim=AUDIO_DIM, t_feat_dim=TEXT_DIM))
    model.eval()
    scores = model(**batch.model_inputs())["saliency_scores"]  # (B, N_V)
    quiet = {**batch.model_inputs(), "src_aud": torch.zeros_like(batch.src_aud)}
    assert not torch.allclose(model(**quiet)["saliency_scores"], scores)  # the audio changes the output


def test_a_umt_with_audio_trains_per_domain_through_the_cli(tmp_path: Path) -> None:
    data = youtube_with_audio(tmp_path / "data")
    config = tiny_umt_config(v_feat_dim=VIDEO_DIM, a_feat_dim=AUDIO_DIM, t_feat_dim=TEXT_DIM)
    backbone = save_backbone(build_backbone(config), tmp_path / "umt")
    out = tmp_path / "runs"
    result = runner.invoke(app, finetune(data, backbone, out))
    assert result.exit_code == 0, result.output
    table = json.loads((out / "domains.json").read_text())
    assert sorted(table["domains"]) == ["dog", "skiing"]
    for domain in ("dog", "skiing"):
        bundle = json.loads((out / domain / "best" / "adapter_config.json").read_text())
        spec = json.dumps(bundle)
        assert (
            '"audio": {"name": "audio", "dim": 3, "l2_normalize": false}' in spec and '"tef": false' in spec
        )


@pytest.mark.parametrize("case", ["umt-with-audio-on-video-only-data", "moment-detr-on-audio-data"])
def test_audio_mismatch_is_refused_before_training(tmp_path: Path, case: str) -> None:
    if case == "umt-with-audio-on-video-only-data":
        data = youtube_with_audio(tmp_path / "data", audio=False)
        config: Any = tiny_umt_config(v_feat_dim=VIDEO_DIM, a_feat_dim=AUDIO_DIM, t_feat_dim=TEXT_DIM)
        expected = f"the backbone takes {AUDIO_DIM}-wide audio features, the data has none"
    else:
        data = youtube_with_audio(tmp_path / "data")
        config = tiny_moment_detr_config(v_feat_dim=VIDEO_DIM, t_feat_dim=TEXT_DIM)
        expected = (
            f"the data has {AUDIO_DIM}-wide audio features (audio_features/), the backbone takes no audio"
        )
    backbone = save_backbone(build_backbone(config), tmp_path / "backbone")
    out = tmp_path / "runs"
    result = runner.invoke(app, finetune(data, backbone, out))
    output = " ".join(result.output.split())  # rich may wrap the line
    assert result.exit_code == 1, result.output
    assert "features do not fit backbone" in output and expected in output
    assert not list(out.glob("*/metrics.json"))  # refused before any training
