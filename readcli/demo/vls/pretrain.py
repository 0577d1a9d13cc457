"""The tiny vision-guided BART of the VLS demo, pretrained on the source domain (cached) with the same
code as `finetune --task vls`: `build_vision_guided`, `SummarizationTask`, the shared training loop.

Cache: `vls-backbone-<digest>/` = `save_vision_guided` output (config.json written last) plus
`pretrain.json` (held-out source ROUGE, seconds). The saved fusion head is marked `fusion_trained`:
it is part of the pretrained backbone, frozen under parameter-efficient methods like the rest, as in
the paper's VG-BART checkpoint (docs/summarization.md, "New head or backbone weight").
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from readcli.backbones.vision_guided.checkpoint_io import build_vision_guided, save_vision_guided
from readcli.backbones.vision_guided.config import tiny_text_config
from readcli.backbones.vision_guided.hub import no_progress_bar
from readcli.backbones.vision_guided.model import VisionGuidedSeq2Seq
from readcli.data.how2 import How2Dataset, load_how2_split
from readcli.demo.vls.config import VLSConfig, fusion_config
from readcli.demo.vls.data import WordTokenizer, limits, word_tokenizer
from readcli.fileio import atomic_write_json
from readcli.seeding import seed_everything
from readcli.training.loop import ProgressCallback, train
from readcli.training.summarization_task import SummarizationTask

log = logging.getLogger(__name__)
RECORD = "pretrain.json"


@dataclass(frozen=True)
class PretrainedVLS:
    directory: Path
    reused: bool
    seconds: float
    metrics: dict[str, float]  # ROUGE-1/2/L on the source domain's held-out examples


def video_object_accuracy(rows: list[dict[str, Any]], transcripts: list[str]) -> float:
    """% of the hidden objects ("we cut it .": only the video shows what was cut) that the summary
    names with the right action: the skill the source domain teaches and the targets build on."""
    hits = total = 0
    for row, transcript in zip(rows, transcripts, strict=True):
        predicted = set(row["summary"].split(" then "))
        for step in row["reference"].split(" then "):
            action = step.split()[0]
            if f"we {action} it" in transcript:
                total += 1
                hits += step in predicted
    return round(100 * hits / total, 2) if total else float("nan")


def build_tiny(config: VLSConfig) -> VisionGuidedSeq2Seq:
    """A fresh tiny VG-BART (d_model 32, 2+2 layers by default) over the world's word tokenizer."""
    tokenizer = word_tokenizer()
    text = tiny_text_config(
        "bart", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, d_model=config.d_model, layers=config.layers,
    )  # fmt: skip
    return build_vision_guided(text, fusion_config(config), tokenizer)


def ensure_pretrained(
    config: VLSConfig, world_dir: Path, cache: Path, progress: ProgressCallback | None = None
) -> PretrainedVLS:
    directory = cache / f"vls-backbone-{config.backbone_digest()}"
    record = directory / RECORD
    if (directory / "config.json").is_file() and record.is_file():
        meta = json.loads(record.read_text(encoding="utf-8"))
        return PretrainedVLS(directory, True, float(meta["seconds"]), dict(meta["source_metrics"]))
    started = time.perf_counter()
    seed_everything(config.pretrain.seed)
    model = build_tiny(config)
    bounds = limits(config)
    source = world_dir / "source"
    task = SummarizationTask(
        train=How2Dataset(load_how2_split(source, "train", limits=bounds), bounds),
        val=How2Dataset(load_how2_split(source, "val", limits=bounds), bounds),
        tokenizer=WordTokenizer(), limits=bounds, generation=config.generation, eval_batch_size=100,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="readcli-vls-pretrain-") as run_dir:
        result = train(model, task, config.pretrain, Path(run_dir), progress=progress)
    metrics = {k: float(v) for k, v in result.state.history[-1].items() if k != "epoch"}
    rows = task.predict(model.eval(), task.val, torch.device("cpu"))
    transcripts = [example.transcript for example in task.val.examples]
    metrics["video_objects"] = video_object_accuracy(rows, transcripts)
    model.config = replace(model.config, fusion_trained=config.frozen_fusion)
    with no_progress_bar():
        save_vision_guided(model.eval(), directory)
    seconds = time.perf_counter() - started
    atomic_write_json(record, {"profile": config.name, "seconds": seconds, "source_metrics": metrics})
    log.info("pretrained the VLS demo backbone in %.0f s: %s", seconds, metrics)
    return PretrainedVLS(directory, False, seconds, metrics)
