"""`VLSTask`: the summarization half of `readcli demo`, a `readcli.demo.contract.DemoTask`.

One run = the cached pretrained tiny VG-BART loaded with `load_vision_guided`, the demo method injected
with `inject` (and PVLA when the row has it), trained by the shared loop through `SummarizationTask`
on the seed's low-resource subset, then greedy summaries of the requested split scored per example
(ROUGE-L/1/2 F1 ×100, rouge-score with the Porter stemmer, as `readcli.evaluation.rouge_scores`).
The task holds only plain settings and a path, so it pickles into the runner's worker processes.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from readcli.adapters.accounting import count_parameters
from readcli.adapters.inject import inject
from readcli.backbones.vision_guided.checkpoint_io import load_vision_guided
from readcli.data.how2 import How2Dataset, How2Item, How2Limits, How2Split
from readcli.demo.contract import DemoTask, RunScores, SourceReport, Split
from readcli.demo.methods import DEMO_METHODS, demo_method
from readcli.demo.pooled import add_pooled_alignment
from readcli.demo.vls.config import VLSConfig
from readcli.demo.vls.data import WordTokenizer, ensure_world, limits, target_splits, test_split
from readcli.demo.vls.pretrain import ensure_pretrained
from readcli.demo.vls.world import WORLDS
from readcli.errors import InvalidValueError, choices_text
from readcli.evaluation.rouge import ROUGE_TYPES, rouge_f1_per_pair
from readcli.seeding import seed_everything
from readcli.training.loop import EvalOutput, ProgressEvent, TrainSettings, train
from readcli.training.summarization_task import SummarizationTask

METRICS: tuple[str, ...] = ("ROUGE-L", "ROUGE-1", "ROUGE-2")  # the primary (finetune's rougeL) first
_KEYS = {"ROUGE-1": "rouge1", "ROUGE-2": "rouge2", "ROUGE-L": "rougeL"}
# every demo row a vision-guided BART can take: prompt tuning has no seq2seq prompt spec (refused by
# inject), and the UMT row is a grounding backbone
VLS_METHODS: tuple[str, ...] = tuple(
    key for key, row in DEMO_METHODS.items() if row.settings.method != "prompt" and row.backbone != "umt"
)
DEFAULT_METHODS: tuple[str, ...] = (
    "full", "partial", "bias", "proj", "lora", "adapter", "read", "read-pvla", "read-pvla-fullmass",
)  # fmt: skip


def per_example_rouge(predictions: list[str], references: list[str]) -> dict[str, np.ndarray]:
    """ROUGE F1 ×100 of each prediction against its reference: {"ROUGE-1": (Q,), ...}."""
    f1 = rouge_f1_per_pair(predictions, references)  # (Q, 3)
    return {metric: 100 * f1[:, ROUGE_TYPES.index(_KEYS[metric])] for metric in METRICS}


@dataclass
class _AdaptationTask(SummarizationTask):
    """SummarizationTask whose per-epoch evaluation is the mean training loss of that epoch's steps.

    The loop evaluates after every epoch; generating the dev split every epoch would cost more than
    the training, and the run is scored once, after the last epoch, on the split asked for. The step
    losses come from the loop's progress events (`record`), so this evaluation costs nothing."""

    step_losses: list[float] = field(default_factory=list)
    alignment: str = "ot"  # "ot": PVLA as finetune runs it; a POOLED_KINDS entry: Table 9's distances

    def wants_alignment(self) -> bool:
        return self.alignment != "ot" or super().wants_alignment()

    def add_alignment(
        self, total: torch.Tensor, parts: dict[str, torch.Tensor], outputs: Any
    ) -> torch.Tensor:
        if self.alignment == "ot":
            return super().add_alignment(total, parts, outputs)
        return add_pooled_alignment(total, parts, outputs, self.pvla, self.alignment)

    def record(self, event: ProgressEvent) -> None:
        if event.kind == "step":
            self.step_losses.append(float(event.parts["loss_lm"]))

    def evaluate(self, model: torch.nn.Module, device: torch.device) -> EvalOutput:
        loss = float(np.mean(self.step_losses)) if self.step_losses else float("nan")
        self.step_losses.clear()
        return EvalOutput(metrics={"train_loss": loss})


class _LoadedOnce(How2Dataset):
    """A How2Dataset that reads each feature file once per run (the loop asks for every item every
    epoch; the demo's subsets are a few dozen small files)."""

    def __init__(self, split: How2Split, limits: How2Limits) -> None:
        super().__init__(split, limits)
        self._items: dict[int, How2Item] = {}

    def __getitem__(self, index: int) -> How2Item:
        if index not in self._items:
            self._items[index] = super().__getitem__(index)
        return self._items[index]


def _scratch_dir() -> str | None:
    """Memory-backed scratch space when there is some: the loop writes (and fsyncs) a checkpoint every
    epoch, which costs ~100 ms on a disk and nothing in /dev/shm; the checkpoints are thrown away."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@dataclass
class VLSTask:
    """The VLS demo task; `prepare(cache)` must run (in any process) before `run`."""

    config: VLSConfig = field(default_factory=VLSConfig)
    method_keys: tuple[str, ...] = DEFAULT_METHODS
    cache: Path | None = None
    name: str = "vls"
    metrics: tuple[str, ...] = METRICS
    worlds: tuple[str, ...] = WORLDS

    def __post_init__(self) -> None:
        for key in self.method_keys:
            if key not in VLS_METHODS:
                raise InvalidValueError(
                    f"demo method {key!r} does not run on the summarization task: choose from "
                    f"{choices_text(VLS_METHODS)}"
                )

    def methods(self) -> tuple[str, ...]:
        return self.method_keys

    def prepare(self, cache: Path) -> tuple[SourceReport, ...]:
        """Write (or reuse) the world and pretrain (or reuse) the tiny VG-BART; report source mastery."""
        self.cache = Path(cache)
        world = ensure_world(self.config, self.cache)
        pretrained = ensure_pretrained(self.config, world, self.cache)
        return (SourceReport("vg_bart", pretrained.directory, pretrained.reused, pretrained.seconds,
                             pretrained.metrics),)  # fmt: skip

    def _dirs(self) -> tuple[Path, Path]:
        if self.cache is None:
            raise InvalidValueError("the VLS demo task is not prepared: call prepare(cache) before run()")
        world = ensure_world(self.config, self.cache)  # a cheap check when the world is there
        return world, ensure_pretrained(self.config, world, self.cache).directory

    def run(self, world: str, method: str, lr: float, seed: int, split: Split) -> RunScores:
        if world not in WORLDS:
            raise InvalidValueError(f"unknown VLS world {world!r}: choose one of {choices_text(WORLDS)}")
        if method not in self.method_keys:
            raise InvalidValueError(
                f"demo method {method!r} is not run here: choose one of {choices_text(self.method_keys)}"
            )
        if split not in ("dev", "test"):
            raise InvalidValueError(f"split {split!r} is invalid: choose dev or test")
        started = time.perf_counter()
        world_root, backbone = self._dirs()
        train_split, dev_split = target_splits(world_root / world, self.config, seed)
        model, task = self._adapted(backbone, method, lr, seed, train_split)
        # the test split is opened here and only here, after training, and only when it is asked for
        scored = dev_split if split == "dev" else test_split(world_root / world, self.config)
        return self._score(model, task, scored, started)

    def source_only(self, world: str, split: Split) -> RunScores:
        """The pretrained backbone on `world`'s split without adaptation: what the shift costs."""
        started = time.perf_counter()
        world_root, backbone = self._dirs()
        _, dev_split = target_splits(world_root / world, self.config, 0)
        scored = dev_split if split == "dev" else test_split(world_root / world, self.config)
        model = load_vision_guided(backbone)
        model.tokenizer = WordTokenizer()
        bounds = limits(self.config)
        task = SummarizationTask(
            train=How2Dataset(scored, bounds), val=How2Dataset(scored, bounds), tokenizer=model.tokenizer,
            limits=bounds, generation=self.config.generation, eval_batch_size=100,
        )  # fmt: skip
        return self._score(model, task, scored, started)

    def _score(self, model: Any, task: SummarizationTask, scored: How2Split, started: float) -> RunScores:
        rows = task.predict(model, How2Dataset(scored, task.limits), torch.device("cpu"))
        scores = per_example_rouge([r["summary"] for r in rows], [r["reference"] for r in rows])
        count = count_parameters(model)
        return RunScores(scores, count.trainable, count.total, time.perf_counter() - started)

    def _adapted(
        self, backbone: Path, method: str, lr: float, seed: int, train_split: How2Split
    ) -> tuple[Any, SummarizationTask]:
        row = demo_method(method)
        config = self.config
        model = load_vision_guided(backbone)
        model.tokenizer = WordTokenizer()  # the same ids as the saved tokenizer, without its overhead
        seed_everything(seed)  # adapter initialisation is part of the seed
        inject(model, row.settings)
        bounds = limits(config)
        data = _LoadedOnce(train_split, bounds)
        task = _AdaptationTask(
            train=data, val=data, tokenizer=model.tokenizer, limits=bounds, pvla=row.pvla,
            generation=config.generation, eval_batch_size=100, alignment=row.alignment,
        )  # fmt: skip
        settings = TrainSettings(
            epochs=config.epochs, lr=lr, weight_decay=1e-4, batch_size=config.batch_size, grad_clip=1.0,
            seed=seed, device="cpu", amp="off", select_metric="train_loss", select_mode="min",
        )  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="readcli-vls-adapt-", dir=_scratch_dir()) as run_dir:
            train(model, task, settings, Path(run_dir), progress=task.record)
        return model.eval(), task


def as_demo_task(task: VLSTask) -> DemoTask:
    """`task` as the runner's contract (mypy checks here that VLSTask satisfies DemoTask)."""
    return task
