"""The VLS world on disk, in the How2 layout `finetune --task vls` reads (docs/data.md), and its tokenizer.

    world-<digest>/source/{sum_train,sum_cv}/{tran,desc}.tok.txt + video_action_features/*.npy
    world-<digest>/<world>/pool/sum_train/...  + video_action_features/   the labelled target pool
    world-<digest>/<world>/test/sum_devtest/... + video_action_features/  a root of its own

The test split lives under its own root with its own features, so scoring on dev never opens a test
file (tests/test_demo_vls.py proves it by deleting them). The world is written in a temporary sibling
and renamed into place: an interrupted run leaves no half world.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from readcli.data.how2 import How2Limits, How2Split, load_how2_split
from readcli.data.subset import select_subset
from readcli.demo.vls.config import VLSConfig
from readcli.demo.vls.world import SPECIALS, VOCABULARY, WORLDS, Example, make_examples, make_look
from readcli.errors import InvalidValueError

DEV_SEED = 7919  # fixes which pool examples form the dev split (the same for every seed and method)


def word_tokenizer() -> Any:
    """The world's word-level tokenizer as a `transformers` fast tokenizer (offline; </s> appended to
    every text): what the saved backbone carries and `load_vision_guided` loads."""
    # lazy: transformers' tokenizers load only when the summarization world builds its tokenizer
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(VOCABULARY)}
    pad, eos, unk = SPECIALS
    model = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    model.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    model.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", special_tokens=[(eos, vocab[eos])]
    )
    return PreTrainedTokenizerFast(tokenizer_object=model, pad_token=pad, eos_token=eos, unk_token=unk)


class WordTokenizer:
    """The same word-level tokenizer, in plain Python: the part of the `transformers` interface that
    summarization batches and `decode` use (collate_summaries, VisionGuidedSeq2Seq.decode).

    The transformers wrapper costs ~4 ms a call, which at two calls per batch is a third of a demo
    run; this one gives the same ids (tests/test_demo_vls.py checks) in microseconds."""

    def __init__(self) -> None:
        self.vocab = {word: i for i, word in enumerate(VOCABULARY)}
        self.pad_token_id, self.eos_token_id, self.unk_token_id = (self.vocab[w] for w in SPECIALS)

    def __len__(self) -> int:
        return len(self.vocab)

    def _ids(self, text: str, max_length: int | None) -> list[int]:
        ids = [self.vocab.get(word, self.unk_token_id) for word in text.split()]
        if max_length is not None:
            ids = ids[: max_length - 1]  # truncation keeps the end token in place
        return [*ids, self.eos_token_id]

    def __call__(
        self,
        text: list[str] | None = None,
        *,
        text_target: list[str] | None = None,
        max_length: int | None = None,
        truncation: bool = False,
        padding: bool = False,
        return_tensors: str | None = None,
    ) -> dict[str, Any]:
        texts = text if text is not None else text_target
        if texts is None:
            raise InvalidValueError("give text or text_target to tokenize")
        rows = [self._ids(t, max_length if truncation else None) for t in texts]
        if not padding:
            return {"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]}
        width = max(len(r) for r in rows)
        ids = [r + [self.pad_token_id] * (width - len(r)) for r in rows]
        mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
        if return_tensors == "pt":
            return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}
        return {"input_ids": ids, "attention_mask": mask}

    def batch_decode(self, ids: list[list[int]], skip_special_tokens: bool = False) -> list[str]:
        words = list(self.vocab)
        special = {self.pad_token_id, self.eos_token_id, self.unk_token_id} if skip_special_tokens else set()
        return [" ".join(words[i] for i in row if i not in special) for row in ids]


def limits(config: VLSConfig) -> How2Limits:
    return How2Limits(
        max_input_tokens=96, max_target_tokens=16, max_video_frames=64, video_dim=config.video_dim
    )


def _write_how2(root: Path, split_dir: str, examples: list[Example]) -> None:
    folder = root / split_dir
    features = root / "video_action_features"
    folder.mkdir(parents=True)
    features.mkdir(exist_ok=True)
    (folder / "tran.tok.txt").write_text("".join(f"{e.video_id} {e.transcript}\n" for e in examples))
    (folder / "desc.tok.txt").write_text("".join(f"{e.video_id} {e.summary}\n" for e in examples))
    for example in examples:
        np.save(features / f"{example.video_id}.npy", example.video)


def ensure_world(config: VLSConfig, cache: Path) -> Path:
    """The world's directory under `cache`: reused when complete, else generated (a few seconds)."""
    directory = cache / f"vls-world-{config.world_digest()}"
    if (directory / "complete").is_file():
        return directory
    cache.mkdir(parents=True, exist_ok=True)
    look = make_look(config.video_dim, config.camera_angle, config.source_noise, config.target_noise,
                     config.world_seed)  # fmt: skip
    with tempfile.TemporaryDirectory(dir=cache, prefix=".vls-world-") as temp:
        staging = Path(temp) / "world"
        source = staging / "source"
        _write_how2(
            source,
            "sum_train",
            make_examples("source", "train", config.source_train, look, config.world_seed),
        )
        _write_how2(
            source,
            "sum_cv",
            make_examples("source", "heldout", config.source_heldout, look, config.world_seed),
        )
        for world in WORLDS:
            pool = make_examples(world, "pool", config.target_pool, look, config.world_seed)
            _write_how2(staging / world / "pool", "sum_train", pool)
            test = make_examples(world, "test", config.target_test, look, config.world_seed)
            _write_how2(staging / world / "test", "sum_devtest", test)
        (staging / "complete").write_text("")
        if not (directory / "complete").is_file():  # another process may have finished first
            shutil.rmtree(directory, ignore_errors=True)
            staging.rename(directory)
    return directory


def target_splits(world_dir: Path, config: VLSConfig, seed: int) -> tuple[How2Split, How2Split]:
    """(the seed's low-resource training subset, the world's dev split), both from the labelled pool.

    Dev is fixed per world (DEV_SEED); the seed draws `train_samples` of the remaining pool."""
    pool = load_how2_split(world_dir / "pool", "train", limits=limits(config))
    dev_ids = {e.video_id for e in select_subset(pool.examples, config.target_dev, DEV_SEED)}
    rest = [e for e in pool.examples if e.video_id not in dev_ids]
    dev = [e for e in pool.examples if e.video_id in dev_ids]
    train = select_subset(rest, config.train_samples, seed)
    return replace(pool, examples=train), replace(pool, examples=dev)


def test_split(world_dir: Path, config: VLSConfig) -> How2Split:
    return load_how2_split(world_dir / "test", "test", limits=limits(config))
