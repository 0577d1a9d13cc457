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

from readcli.backbones.vision_guided import VisionGuidedSeq2Seq
from readcli.backbones.vision_guided_config import VisionGuidedConfig, tiny_text_config
from readcli.backbones.vision_guided_io import build_vision_guided, save_vision_guided
from readcli.data.how2 import How2Dataset, load_how2_split
from readcli.demo.vls.config import VLSConfig
from readcli.demo.vls.data import limits, word_tokenizer
from readcli.fileio import atomic_write_json
from readcli.training.loop import ProgressCallback, seed_everything, train
from readcli.training.summarization_task import SummarizationTask

log = logging.getLogger(__name__)
RECORD = "pretrain.json"


@dataclass(frozen=True)
class PretrainedVLS:
    directory: Path
    reused: bool
    seconds: float
    metrics: dict[str, float]  # ROUGE-1/2/L on the source domain's held-out examples


def build_tiny(config: VLSConfig) -> VisionGuidedSeq2Seq:
    """A fresh tiny VG-BART (d_model 32, 2+2 layers by default) over the world's word tokenizer."""
    tokenizer = word_tokenizer()
    text = tiny_text_config(
        "bart", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, d_model=config.d_model, layers=config.layers,
    )  # fmt: skip
    fusion = VisionGuidedConfig("bart", video_dim=config.video_dim, fusion_dropout=0.0)
    return build_vision_guided(text, fusion, tokenizer)


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
        tokenizer=model.tokenizer, limits=bounds, generation=config.generation, eval_batch_size=100,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="readcli-vls-pretrain-") as run_dir:
        result = train(model, task, config.pretrain, Path(run_dir), progress=progress)
    metrics = {k: float(v) for k, v in result.state.history[-1].items() if k != "epoch"}
    model.config = replace(model.config, fusion_trained=config.frozen_fusion)
    save_vision_guided(model.eval(), directory)
    seconds = time.perf_counter() - started
    atomic_write_json(record, {"profile": config.name, "seconds": seconds, "source_metrics": metrics})
    log.info("pretrained the VLS demo backbone in %.0f s: %s", seconds, metrics)
    return PretrainedVLS(directory, False, seconds, metrics)
