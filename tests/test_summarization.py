"""Video-language summarization end to end: `finetune --task vls`, bundles, `summarize`, bad input.

A small How2-layout folder is written here (8 train, 4 val pairs, 12-d video rows); the backbones are
tiny vision-guided BART/T5 directories over the byte-level ByT5 tokenizer (tests/test_vision_guided.py).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_vision_guided import VIDEO_DIM, _output_linear, inputs, tiny_vg
from torch import nn
from typer.testing import CliRunner

from readcli.adapters import load_bundle, method_settings, save_bundle
from readcli.adapters.inject import adapter_parameters, inject
from readcli.alignment import PVLASettings
from readcli.backbones.vision_guided.checkpoint_io import load_vision_guided, save_vision_guided
from readcli.backbones.vision_guided.config import GenerationSettings
from readcli.cli import app
from readcli.data.how2 import How2Dataset, How2Limits, load_how2_split
from readcli.errors import BundleError, InputFileError, InvalidValueError
from readcli.pipelines.finetune import resume_request, run
from readcli.pipelines.finetune_request import GroundingFinetuneRequest, SummarizationFinetuneRequest
from readcli.training.loop import TrainSettings
from readcli.training.summarization_task import SummarizationTask

runner = CliRunner()
TOPICS = [
    ("onion", "cut the onion into thin slices with a sharp knife", "slice an onion"),
    ("water", "fill the pot and boil the water on high heat", "boil water"),
    ("knot", "loop the rope twice and pull the end to tie it", "tie a knot"),
    ("paint", "dip the brush and paint the wall from top down", "paint a wall"),
]


def _write_split(root: Path, split: str, ids: list[str]) -> None:
    folder = root / split
    folder.mkdir(parents=True)
    topics = [TOPICS[i % len(TOPICS)] for i in range(len(ids))]
    (folder / "tran.tok.txt").write_text("".join(f"{v} {t[1]}\n" for v, t in zip(ids, topics, strict=True)))
    (folder / "desc.tok.txt").write_text("".join(f"{v} {t[2]}\n" for v, t in zip(ids, topics, strict=True)))


@pytest.fixture(scope="module")
def how2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("how2")
    train, val = [f"tr{i:02d}" for i in range(8)], [f"va{i:02d}" for i in range(4)]
    _write_split(root, "sum_train", train)
    _write_split(root, "sum_cv", val)
    features = root / "video_action_features"
    features.mkdir()
    rng = np.random.default_rng(0)
    for i, vid in enumerate(train + val):
        rows = rng.normal(size=(3 + i % 4, VIDEO_DIM)).astype(np.float32)
        rows[:, i % len(TOPICS)] += 2.0  # the topic shows in the video too
        np.save(features / f"{vid}.npy", rows)
    return root


@pytest.fixture(scope="module")
def backbones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("backbones")
    return {family: save_vision_guided(tiny_vg(family), root / family) for family in ("bart", "t5")}


def _request(data: Path, out: Path, backbone: Path, **changes: Any) -> SummarizationFinetuneRequest:
    settings = TrainSettings(epochs=2, batch_size=4, lr=3e-3, seed=5, device="cpu")
    base = SummarizationFinetuneRequest(
        data=str(data), out=str(out), backbone=str(backbone), bottleneck=4, train=settings,
        beams=2, max_summary_length=12,
    )  # fmt: skip
    return replace(base, **changes)


@pytest.mark.parametrize("family", ["bart", "t5"])
def test_training_lowers_the_loss(family: str, how2_dir: Path) -> None:
    model = tiny_vg(family)
    inject(model, method_settings("read", bottleneck=4))
    limits = How2Limits(video_dim=VIDEO_DIM)
    split = load_how2_split(how2_dir, "train", limits=limits)
    task = SummarizationTask(
        train=How2Dataset(split, limits), val=How2Dataset(split, limits), tokenizer=model.tokenizer,
        limits=limits, pvla=PVLASettings(weight=0.1),
    )  # fmt: skip
    batch = task.collate(task.train, list(range(8)))
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=3e-2)
    model.train()
    losses = []
    for _ in range(10):
        step = task.train_step(model, batch, torch.device("cpu"))
        assert set(step.parts) == {"loss_lm", "loss_pvla"} and float(step.parts["loss_pvla"].detach()) > 0
        optimiser.zero_grad()
        step.total.backward()
        optimiser.step()
        losses.append(float(step.parts["loss_lm"].detach()))
    # a random tiny model starts near uniform (ln 384 = 5.95); READ + fusion alone move it steadily
    assert losses[-1] < losses[0] - 0.05, losses
    assert sum(b < a for a, b in zip(losses, losses[1:], strict=False)) >= 8, losses


def test_finetune_vls_cli_writes_a_run_and_resumes(
    how2_dir: Path, backbones: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = [
        "finetune", "--task", "vls", "--data", str(how2_dir), "--out", str(out), "--backbone",
        str(backbones["bart"]), "--bottleneck", "4", "--epochs", "1", "--batch-size", "4", "--lr", "3e-3",
        "--device", "cpu", "--beams", "2", "--max-summary-length", "12", "--video-dim", str(VIDEO_DIM),
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "rougeL" in result.output and "best epoch 1" in result.output
    saved = json.loads((out / "run.json").read_text())
    assert saved["train"]["select_metric"] == "rougeL" and saved["beams"] == 2
    config = json.loads((out / "best" / "adapter_config.json").read_text())
    assert config["task"] == "vls" and config["backbone"]["architecture"] == "vision_guided_bart"
    assert config["extra"]["video_dim"] == VIDEO_DIM and config["extra"]["generation"]["beams"] == 2
    rows = [json.loads(line) for line in (out / "best_val_preds.jsonl").read_text().splitlines()]
    assert [r["video_id"] for r in rows] == ["va00", "va01", "va02", "va03"]
    lines = (out / "best_val_summaries.txt").read_text().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["va00", "va01", "va02", "va03"]
    resumed = run(resume_request(out, epochs=2), resume=True)
    assert resumed.resumed_from_epoch == 1 and len(resumed.history) == 2
    assert {"rouge1", "rouge2", "rougeL"} <= set(resumed.history[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]


def test_finetune_vls_refuses_features_of_another_width(
    how2_dir: Path, backbones: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(InputFileError, match="feature dimension 12, expected 2048"):
        run(_request(how2_dir, tmp_path / "run", backbones["bart"], video_dim=2048))  # a new 2048-d head


def test_vls_requests_get_the_task_defaults(tmp_path: Path) -> None:
    plain = SummarizationFinetuneRequest(data="d", out=str(tmp_path))
    assert plain.backbone == "bart-base-vg" and plain.train.select_metric == "rougeL"
    # the loop's own default metric is tlg's: a vls request given TrainSettings() picks rougeL
    assert (
        SummarizationFinetuneRequest("d", str(tmp_path), train=TrainSettings(epochs=1)).train.select_metric
        == "rougeL"
    )
    chosen = SummarizationFinetuneRequest(
        data="d", out=str(tmp_path), backbone="t5-base-vg", train=TrainSettings(select_metric="rouge2")
    )
    assert chosen.backbone == "t5-base-vg" and chosen.train.select_metric == "rouge2"
    grounding = GroundingFinetuneRequest(data="d", out=str(tmp_path))
    assert grounding.backbone == "moment-detr-clip" and grounding.train.select_metric == "MR-full-mAP"
    with pytest.raises(InvalidValueError, match="summary length .*--max-summary-length"):
        run(SummarizationFinetuneRequest(data="d", out=str(tmp_path / "r"), max_summary_length=0))


def _trained_bundle(
    family: str, directory: Path, backbone: Path, fusion: dict[str, Any] | None = None
) -> Any:
    model = load_vision_guided(backbone, video_dim=VIDEO_DIM, fusion=fusion)
    inject(model, method_settings("read", bottleneck=4))
    with torch.no_grad():  # stands in for training: adapters and the fusion head away from identity
        for parameter in adapter_parameters(model).values():
            nn.init.normal_(parameter, std=0.3)
        nn.init.normal_(_output_linear(model).weight, std=1.0)
    extra = {"video_dim": VIDEO_DIM, "generation": {"beams": 2, "no_repeat_ngram_size": 3, "max_length": 10}}
    save_bundle(model, directory, backbone_name=str(backbone), task="vls", extra_config=extra)
    return model


@pytest.mark.parametrize("family", ["bart", "t5"])
def test_bundle_round_trip_gives_identical_generations(
    family: str, backbones: dict[str, Path], tmp_path: Path
) -> None:
    trained = _trained_bundle(family, tmp_path / "bundle", backbones[family])
    fresh = load_vision_guided(backbones[family], video_dim=VIDEO_DIM)
    load_bundle(fresh, tmp_path / "bundle", task="vls")
    batch = inputs(fresh)
    args = (batch["input_ids"], batch["attention_mask"], batch["video"], batch["video_mask"])
    settings = GenerationSettings(beams=2, max_length=10)
    expected = trained.generate(*args, settings)
    assert torch.equal(fresh.generate(*args, settings), expected)
    untrained = load_vision_guided(backbones[family], video_dim=VIDEO_DIM)
    inject(untrained, method_settings("read", bottleneck=4))
    assert not torch.equal(untrained(**batch)["logits"], fresh(**batch)["logits"])


def test_a_bundle_made_on_another_fusion_is_refused_naming_the_fusion_fingerprint(
    backbones: dict[str, Path], tmp_path: Path
) -> None:
    """A bundle from readcli's pre-VG-GPLMs fusion (no fusion fingerprint recorded) or another variant."""
    _trained_bundle("bart", tmp_path / "bundle", backbones["bart"])
    path = tmp_path / "bundle" / "adapter_config.json"
    config = json.loads(path.read_text())
    assert config["backbone"]["extra"]["fusion_fingerprint"].startswith("vg-gplms cross_attn_type=0")
    del config["backbone"]["extra"]["fusion_fingerprint"]  # as the old fusion's bundles were written
    path.write_text(json.dumps(config))
    model = load_vision_guided(backbones["bart"], video_dim=VIDEO_DIM)
    with pytest.raises(
        BundleError, match="fusion_fingerprint: bundle None, model 'vg-gplms cross_attn_type=0"
    ):
        load_bundle(model, tmp_path / "bundle")
    other = load_vision_guided(backbones["bart"], video_dim=VIDEO_DIM, fusion={"cross_attn_type": 5})
    _trained_bundle("bart", tmp_path / "b5", backbones["bart"], fusion={"cross_attn_type": 5})
    load_bundle(other, tmp_path / "b5")  # the same variant loads
    with pytest.raises(BundleError, match="fusion_fingerprint: bundle 'vg-gplms cross_attn_type=5"):
        load_bundle(load_vision_guided(backbones["bart"], video_dim=VIDEO_DIM), tmp_path / "b5")


def _summarize(*args: str) -> Any:
    return runner.invoke(app, ["summarize", *args])


def test_summarize_end_to_end_with_a_bundle(backbones: dict[str, Path], tmp_path: Path) -> None:
    _trained_bundle("bart", tmp_path / "bundle", backbones["bart"])
    transcript = tmp_path / "t.txt"
    transcript.write_text("cut the onion into\nthin slices\n", encoding="utf-8")
    features = tmp_path / "f.npy"
    np.save(features, np.random.default_rng(0).normal(size=(4, VIDEO_DIM)).astype(np.float32))
    common = ["--transcript", str(transcript), "--video-features", str(features), "--device", "cpu"]
    result = _summarize(*common, "--adapter", str(tmp_path / "bundle"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["backbone"] == str(backbones["bart"]) and report["video_rows"] == 4
    assert report["generation"] == {
        "beams": 2,
        "no_repeat_ngram_size": 3,
        "max_length": 10,
        "length_penalty": 1.0,
        "bart_forced_eos": True,
    }
    assert isinstance(report["summary"], str) and report["video_source"] == "features"
    assert report["published_weights"] is True  # the adapter was trained on this backbone (fingerprint)
    plain = _summarize(*common, "--adapter", str(tmp_path / "bundle"))
    assert plain.exit_code == 0 and plain.stdout.strip() == report["summary"].strip()
    greedy = _summarize(*common, "--backbone", str(backbones["bart"]), "--beams", "1", "--json")
    assert greedy.exit_code == 0, greedy.output
    untrained = json.loads(greedy.stdout)
    assert untrained["generation"]["beams"] == 1 and untrained["adapter"] is None
    assert any("fusion head is untrained" in w for w in untrained["warnings"])
    assert untrained["published_weights"] is False  # a saved folder, no adapter: one warning says so
    assert any("not the published ones" in w for w in untrained["warnings"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "--transcript .*t.txt: file not found"),
        (b"  \n\t\n", "--transcript .*t.txt is empty"),
        (b"caf\xe9 au lait", r"is not UTF-8 text \(byte 0xe9 at offset 3\)"),
    ],
)
def test_summarize_bad_transcripts_give_one_line(
    content: bytes | None, expected: str, backbones: dict[str, Path], tmp_path: Path
) -> None:
    import re

    transcript = tmp_path / "t.txt"
    if content is not None:
        transcript.write_bytes(content)
    features = tmp_path / "f.npy"
    np.save(features, np.zeros((2, VIDEO_DIM), dtype=np.float32))
    result = _summarize("--transcript", str(transcript), "--video-features", str(features))
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and re.search(expected, result.stderr), result.stderr


def test_summarize_refuses_wrong_features_and_a_bundle_of_another_backbone(
    backbones: dict[str, Path], tmp_path: Path
) -> None:
    _trained_bundle("bart", tmp_path / "bundle", backbones["bart"])
    transcript = tmp_path / "t.txt"
    transcript.write_text("boil the water", encoding="utf-8")
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 7), dtype=np.float32))
    bundle = ["--adapter", str(tmp_path / "bundle")]
    result = _summarize("--transcript", str(transcript), "--video-features", str(wrong), *bundle)
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert (
        "video features of dimension 7, but backbone" in result.stderr
        and "(expected 12, found 7)" in result.stderr
    )
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((3, VIDEO_DIM), dtype=np.float32))
    on_t5 = _summarize("--transcript", str(transcript), "--video-features", str(good), *bundle, "--backbone",
                       str(backbones["t5"]))  # fmt: skip
    assert on_t5.exit_code == 1 and len(on_t5.stderr.strip().splitlines()) == 1
    assert "made for backbone" in on_t5.stderr and "vision_guided_bart" in on_t5.stderr
    assert "vision_guided_t5" in on_t5.stderr
    both = _summarize("video.mp4", "--transcript", str(transcript), "--video-features", str(good))
    assert both.exit_code == 1 and "not both" in both.stderr
    with pytest.raises(BundleError):
        model = load_vision_guided(backbones["t5"], video_dim=VIDEO_DIM)
        load_bundle(model, tmp_path / "bundle")


def _random_clip_encoder() -> Any:
    """open_clip ViT-B-32 with random weights (nothing downloaded), wrapped as readcli's encoder."""
    import open_clip

    from readcli.features.clip_encoder import ClipEncoder, EncoderSpec

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    model.eval().requires_grad_(False)
    spec = EncoderSpec(
        model="ViT-B-32", weights="path", weights_sha256="random", quick_gelu=False, image_dim=512,
        text_dim=512, image_size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
    )  # fmt: skip
    return ClipEncoder(model, preprocess, open_clip.get_tokenizer("ViT-B-32"), spec, torch.device("cpu"))


def test_summarize_a_real_video_through_clip_features(shared_data: Path, tmp_path: Path) -> None:
    from readcli.pipelines.summarize import SummarizeRequest
    from readcli.pipelines.summarize import run as summarize

    backbone = save_vision_guided(tiny_vg("t5", video_dim=512), tmp_path / "clip-t5")
    transcript = tmp_path / "t.txt"
    transcript.write_text("a small dog runs on the grass", encoding="utf-8")
    video = shared_data / "videos" / "shiba.mp4"
    request = SummarizeRequest(
        transcript=str(transcript), video=str(video), backbone=str(backbone), device="cpu", max_length=6
    )
    result = summarize(request, encoder=_random_clip_encoder())
    assert result.video_source == "extracted" and result.video_dim == 512 and result.video_rows == 2
    assert isinstance(result.summary, str) and result.generation.max_length == 6
    narrow = save_vision_guided(tiny_vg("t5"), tmp_path / "narrow")  # a 12-d head cannot take CLIP rows
    with pytest.raises(InputFileError, match="dimension 512, but backbone .*narrow expects 12"):
        summarize(SummarizeRequest(transcript=str(transcript), video=str(video), backbone=str(narrow)))


def test_token_mean_is_global_when_a_batch_is_split_across_ranks(
    how2_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under several processes the LM loss is the token sum over the global batch's token count (with
    the loop's share weighting), so unequal summary lengths on two ranks add up to the one-process
    token mean; in one process it stays the backbone's own mean, bit for bit (docs/distributed.md)."""
    import readcli.training.step as step_module
    from readcli.training.distributed import Dist
    from readcli.training.step import Share, sharing

    model = tiny_vg("bart").eval()  # no dropout: the parts see the same network
    limits = How2Limits(video_dim=VIDEO_DIM)
    split = load_how2_split(how2_dir, "train", limits=limits)
    data = How2Dataset(split, limits)
    task = SummarizationTask(train=data, val=data, tokenizer=model.tokenizer, limits=limits, pvla=None)
    cpu, rows, parts = torch.device("cpu"), list(range(5)), ([0, 1, 2], [3, 4])
    whole = task.train_step(model, task.collate(data, rows), cpu).total
    own_mean = model(**inputs_of(task, data, rows), labels=labels_of(task, data, rows))["loss"]
    assert torch.equal(whole, own_mean)  # one process: the backbone's own mean, bit for bit

    tokens = [int((labels_of(task, data, part) != -100).sum()) for part in parts]
    # unequal lengths per example: a plain per-rank mean would differ
    assert tokens[0] / len(parts[0]) != tokens[1] / len(parts[1])
    monkeypatch.setattr(step_module, "all_reduce_sum", lambda values, job: values * 0 + sum(tokens))
    job, summed = Dist(rank=0, world=2), torch.zeros(())
    for part in parts:
        weight = len(part) * job.world / len(rows)  # the loop's share weighting
        with sharing(Share(weight=weight, job=job)):
            loss = task.train_step(model, task.collate(data, part), cpu).total
        summed = summed + loss * weight / job.world  # what DDP's gradient average differentiates
    torch.testing.assert_close(summed, whole, rtol=1e-6, atol=0)


def inputs_of(task: SummarizationTask, data: How2Dataset, rows: list[int]) -> dict[str, torch.Tensor]:
    from readcli.training.summarization_task import batch_inputs

    return batch_inputs(task.collate(data, rows), torch.device("cpu"))


def labels_of(task: SummarizationTask, data: How2Dataset, rows: list[int]) -> torch.Tensor:
    return task.collate(data, rows).labels
