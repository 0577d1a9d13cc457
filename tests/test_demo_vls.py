"""The summarization task of `readcli demo`: the world generator, the tokenizer, one tiny end-to-end run
per split, determinism, and that scoring on dev never opens the test data.

The runs use a smaller-than-quick profile (a few seconds of pretraining in a temporary cache)."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import readcli.demo.pooled as pooled
from readcli.demo.vls.config import VLSConfig, quick_config
from readcli.demo.vls.data import WordTokenizer, target_splits, word_tokenizer
from readcli.demo.vls.task import VLSTask, per_example_rouge
from readcli.demo.vls.world import (
    ACTIONS,
    OBJECTS,
    SPAN_CLOSE,
    SPAN_OPEN,
    VOCABULARY,
    WORLDS,
    make_examples,
    make_look,
)
from readcli.errors import InputFileError, InvalidValueError
from readcli.evaluation import rouge_scores

LOOK = make_look(16, 1.0, 0.4, 0.6, seed=0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One intra-op thread, as the demo's workers run: a model this small gains nothing from two, and
    on a busy machine two threads wait on each other at every operator (docs/performance.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _examples(domain: str, count: int = 60) -> list:
    return make_examples(domain, "test", count, LOOK, seed=3)


def test_examples_have_the_declared_shapes_and_vocabulary() -> None:
    for domain in ("source", *WORLDS):
        for example in _examples(domain, 20):
            rows, dim = example.video.shape
            assert dim == 16 and example.video.dtype == np.float32 and rows == len(example.related_rows)
            words = example.transcript.split()
            assert set(words) <= set(VOCABULARY) and len(words) == len(example.related_words)
            steps = example.summary.split(" then ")
            assert 2 <= len(steps) <= 3
            assert all(s.split()[0] in ACTIONS and s.split()[1] in OBJECTS for s in steps)


def _summary_objects(example) -> list[str]:
    return [step.split()[1] for step in example.summary.split(" then ")]


def test_visual_world_names_no_object_and_control_names_every_object() -> None:
    for example in _examples("visual"):
        assert not set(example.transcript.split()) & set(OBJECTS)  # only the video shows them
    for example in _examples("control"):
        assert set(_summary_objects(example)) <= set(example.transcript.split())
    hidden = [o not in e.transcript.split() for e in _examples("source") for o in _summary_objects(e)]
    assert 0.3 < np.mean(hidden) < 0.7  # the source teaches reading objects from the video, half the time


def test_partial_world_has_long_unrelated_spans_in_both_modalities() -> None:
    for example in _examples("partial"):
        words = example.transcript.split()
        assert words.count(SPAN_OPEN) == 2 and words.count(SPAN_CLOSE) == 2
        assert example.related_words.mean() < 0.6 and example.related_rows.mean() < 0.6
        # the spans use the steps' own vocabulary: only their context says they describe nothing
        inside = [w for w, related in zip(words, example.related_words, strict=True) if not related]
        assert set(inside) & set(ACTIONS) and set(inside) & set(OBJECTS)
        unrelated_rows = example.video[~example.related_rows]  # (rows, D_v) scenes nobody talks about
        assert len(unrelated_rows) >= 12
    for example in _examples("source"):
        assert SPAN_OPEN not in example.transcript.split() and example.related_words.any()


def test_target_camera_turns_the_video_and_source_camera_does_not() -> None:
    rotation = LOOK.rotation[True]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(16), atol=1e-8)
    assert not np.allclose(rotation, np.eye(16), atol=0.1)
    np.testing.assert_array_equal(LOOK.rotation[False], np.eye(16))


def test_word_tokenizer_gives_the_saved_tokenizers_ids() -> None:
    fast, saved = WordTokenizer(), word_tokenizer()
    texts = ["then we cut the onion . so guys", "now we boil it .", "zzz unknown words"]
    for key in ("text", "text_target"):
        ours = fast(**{key: texts}, max_length=5, truncation=True, padding=True, return_tensors="pt")
        theirs = saved(**{key: texts}, max_length=5, truncation=True, padding=True, return_tensors="pt")
        assert ours["input_ids"].tolist() == theirs["input_ids"].tolist()
        assert ours["attention_mask"].tolist() == theirs["attention_mask"].tolist()
    ids = saved(texts)["input_ids"]
    assert fast.batch_decode(ids, skip_special_tokens=True) == saved.batch_decode(
        ids, skip_special_tokens=True
    )
    assert len(fast) == len(saved) and fast.pad_token_id == saved.pad_token_id


def test_per_example_rouge_averages_to_readclis_rouge() -> None:
    predictions, references = (
        ["cut onion then boil water", "mix egg"],
        ["cut onion then boil rice", "mix egg"],
    )
    per = per_example_rouge(predictions, references)
    overall = rouge_scores(predictions, references)
    for metric, key in (("ROUGE-1", "rouge1"), ("ROUGE-2", "rouge2"), ("ROUGE-L", "rougeL")):
        assert per[metric].shape == (2,) and per[metric][1] == 100.0
        assert round(float(per[metric].mean()), 2) == overall[key]


def _tiny_config() -> VLSConfig:
    quick = quick_config()
    return replace(
        quick, name="test", source_train=128, source_heldout=16, target_pool=40, target_dev=12,
        target_test=20, train_samples=8, pretrain=replace(quick.pretrain, epochs=2),
    )  # fmt: skip


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> VLSTask:
    prepared = VLSTask(config=_tiny_config(), method_keys=("read", "read-pvla", "lora"))
    (report,) = prepared.prepare(tmp_path_factory.mktemp("vls-cache"))
    assert report.architecture == "vg_bart" and not report.reused
    assert {"rouge1", "rouge2", "rougeL", "video_objects"} <= set(report.metrics)
    return prepared


def test_prepare_reuses_the_cache(task: VLSTask) -> None:
    assert task.cache is not None
    (again,) = VLSTask(config=task.config).prepare(task.cache)
    assert again.reused and again.directory.name.startswith("vls-backbone-")


def test_one_run_per_split_is_scored_per_example_and_deterministic(task: VLSTask) -> None:
    dev = task.run("partial", "read-pvla", 3e-3, 1, "dev")
    test = task.run("partial", "read-pvla", 3e-3, 1, "test")
    assert set(dev.per_example) == set(task.metrics) and task.metrics[0] == "ROUGE-L"
    assert dev.per_example["ROUGE-L"].shape == (12,) and test.per_example["ROUGE-L"].shape == (20,)
    assert all(((v >= 0) & (v <= 100)).all() for v in test.per_example.values())
    assert 0 < dev.trainable < dev.total
    # the same arguments give the same scores, also from a copy made the way worker processes get one
    copy = pickle.loads(pickle.dumps(task))
    again = copy.run("partial", "read-pvla", 3e-3, 1, "dev")
    for metric in task.metrics:
        np.testing.assert_array_equal(again.per_example[metric], dev.per_example[metric])


def test_dev_scoring_never_opens_the_test_data(task: VLSTask, tmp_path: Path) -> None:
    assert task.cache is not None
    before = task.run("visual", "lora", 1e-2, 2, "dev")
    worlds = next(task.cache.glob("vls-world-*"))
    moved = tmp_path / "tests"
    moved.mkdir()
    for world in WORLDS:  # take every test split (transcripts, summaries, features) away
        shutil.move(worlds / world / "test", moved / world)
    try:
        after = task.run("visual", "lora", 1e-2, 2, "dev")
        with pytest.raises(InputFileError, match="no How2 test split"):
            task.run("visual", "lora", 1e-2, 2, "test")
    finally:
        for world in WORLDS:
            shutil.move(moved / world, worlds / world / "test")
    np.testing.assert_array_equal(after.per_example["ROUGE-L"], before.per_example["ROUGE-L"])


def test_bad_arguments_are_refused_in_one_line(task: VLSTask) -> None:
    with pytest.raises(InvalidValueError, match="unknown VLS world 'temporal'"):
        task.run("temporal", "read", 1e-3, 0, "dev")
    with pytest.raises(InvalidValueError, match="demo method 'full' is not run here"):
        task.run("visual", "full", 1e-3, 0, "dev")
    with pytest.raises(InvalidValueError, match="split 'val'"):
        task.run("visual", "read", 1e-3, 0, "val")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="does not run on the summarization task"):
        VLSTask(method_keys=("prompt",))
    with pytest.raises(InvalidValueError, match="not prepared"):
        VLSTask().run("visual", "read", 1e-3, 0, "dev")


def test_dev_is_carved_from_the_pool_fixed_per_world_and_apart_from_every_training_subset(
    task: VLSTask,
) -> None:
    assert task.cache is not None
    world = next(task.cache.glob("vls-world-*")) / "partial"
    config = task.config
    dev_ids = None
    train_sets = []
    for seed in (0, 1, 2):
        train, dev = target_splits(world, config, seed)
        ids = [e.video_id for e in dev.examples]
        assert len(ids) == config.target_dev and len(train.examples) == config.train_samples
        assert dev_ids is None or ids == dev_ids  # the same dev split for every seed (and method)
        dev_ids = ids
        train_ids = {e.video_id for e in train.examples}
        assert not train_ids & set(ids) and all("-pool-" in i for i in train_ids | set(ids))
        train_sets.append(train_ids)
    assert train_sets[0] != train_sets[1]  # the seed picks the low-resource subset


def test_pooled_distance_rows_train_with_the_pooled_distance_not_pvla(
    task: VLSTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Table 9 rows are the pooled distances here too (a --full run once ran PVLA under their label)."""
    kinds: list[str] = []

    def spy(states: Any, kind: str) -> Any:
        kinds.append(kind)
        return real(states, kind)

    real = pooled.pooled_distance
    monkeypatch.setattr(pooled, "pooled_distance", spy)
    rows = VLSTask(config=task.config, method_keys=("read-pvla", "read-cosine", "read-l2"))
    assert task.cache is not None
    rows.prepare(task.cache)
    rows.run("visual", "read-pvla", 3e-3, 0, "dev")
    assert kinds == []
    rows.run("visual", "read-cosine", 3e-3, 0, "dev")
    assert kinds and set(kinds) == {"pooled-cosine"}
    kinds.clear()
    rows.run("visual", "read-l2", 3e-3, 0, "dev")
    assert kinds and set(kinds) == {"pooled-l2"}
