"""Data-parallel fine-tuning: `torchrun --nproc_per_node 2 -m readcli finetune` (gloo, CPU) vs one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import reliability_inputs
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_highlight_task import VIDEO_DIM, write_dataset, youtube_row

from readcli.backbones.moment_detr.config import tiny_moment_detr_config
from readcli.backbones.registry import build_backbone, save_backbone
from readcli.backbones.umt.config import tiny_umt_config
from readcli.data import load_grounding_split
from readcli.errors import InvalidValueError, TrainingError
from readcli.pipelines.finetune import run
from readcli.pipelines.finetune_request import GroundingFinetuneRequest
from readcli.training import distributed, loop
from readcli.training.distributed import Dist, SyncedModel, env_dist, local_part
from readcli.training.highlight_task import HighlightTask, bce_positions
from readcli.training.loop import EvalOutput, StepOutput, TrainSettings, batches_of, train
from readcli.training.step import Share, count_normaliser, current_share, sharing

# Measured: 2 ranks vs 1 process differ by <= 4e-7 (relative) in any logged loss, grounding with 1-7
# windows per query and highlight detection with videos of 5-12 clips (float summation order, padding
# to each rank's own longest video); metrics agree to the printed digit. See docs/distributed.md.
LOSS_TOLERANCE = 1e-5  # relative
METRIC_TOLERANCE = 1e-3


@pytest.mark.parametrize("size", [0, 1, 3, 4, 7])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_local_parts_cover_a_global_batch_once_in_order(size: int, world: int) -> None:
    indices = list(range(100, 100 + size))
    parts = [local_part(indices, Dist(rank=r, world=world)) for r in range(world)]
    assert [i for part in parts for i in part] == indices
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_environment_describes_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert env_dist() == Dist(0, 1, 0) and not env_dist().enabled
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert env_dist() == Dist(2, 4, 0) and not env_dist().is_main
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(InvalidValueError, match="RANK=4, LOCAL_RANK=0, WORLD_SIZE=4 are inconsistent"):
        env_dist()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(InvalidValueError, match="RANK='one' is not an integer"):
        env_dist()


def test_auto_and_bare_cuda_devices_follow_the_local_rank() -> None:
    assert distributed.resolve_device("cpu", local_rank=1) == torch.device("cpu")
    if torch.cuda.is_available():
        assert distributed.resolve_device("cuda", local_rank=0) == torch.device("cuda", 0)
    else:
        with pytest.raises(InvalidValueError, match="no CUDA device"):
            distributed.resolve_device("cuda", local_rank=1)


def test_the_ddp_wrapper_forwards_the_models_attributes(tmp_path: Path) -> None:
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        model = torch.nn.Linear(3, 2)
        model.collect_block_states = False  # type: ignore[assignment]
        wrapped = SyncedModel(model, find_unused_parameters=True)
        wrapped.collect_block_states = True
        assert model.collect_block_states is True
        assert wrapped.in_features == 3  # read through to the model
        wrapped(torch.ones(4, 3)).sum().backward()
        assert model.weight.grad is not None
        wrapped.note = "wrapper's own"  # a new name stays on the wrapper
        assert not hasattr(model, "note")
    finally:
        dist.destroy_process_group()


def test_count_normalisers_follow_the_ranks_share(tmp_path: Path) -> None:
    """The denominators a rank's step uses (docs/distributed.md), on a 1-process group standing in for
    rank 0 of 2 (its all-reduce returns this rank's own count): 6 matched windows here; 3 of 4 examples."""
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    cpu, job = torch.device("cpu"), Dist(rank=0, world=2)
    try:
        # outside a step: the official means
        assert count_normaliser(6, cpu) is None and bce_positions(3, 9, cpu) is None
        with sharing(Share(weight=3 * 2 / 4, job=job)):
            assert count_normaliser(6, cpu) == pytest.approx(6 * 0.75)  # x weight / world = x part / global
            assert bce_positions(3, 9, cpu) == 3 * 9  # B x the longest video of all ranks
        with sharing(Share(weight=0.0, job=job)):  # a stand-in: its own mean, weighted 0 by the loop
            assert count_normaliser(6, cpu) is None
    finally:
        dist.destroy_process_group()
    assert current_share() == Share()  # restored after each step


@pytest.fixture(scope="module")
def data_and_backbone(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, Path]:
    """The first 12 train rows, with 7, 1, 4, 1, ... windows (more than the tiny model's 5 queries in
    one: the span losses are means over a batch's matched windows, not over queries), 7 val rows,
    and a tiny Moment-DETR without dropout (dropout masks cannot match between 1 and 2 processes)."""
    root = reliability_inputs.grounding_dir(tmp_path_factory.mktemp("qvh"), shared_data, train=12, val=7)
    train = [json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()]
    assert {len(r["relevant_windows"]) for r in train} == {1, 4, 7}
    torch.manual_seed(0)
    backbone = tmp_path_factory.mktemp("backbone") / "tiny"
    save_backbone(build_backbone(tiny_moment_detr_config(dropout=0.0, input_dropout=0.0)), backbone)
    return root, backbone


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.run(
        [*command, "-m", "readcli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _steps(run_dir: Path) -> list[dict[str, float]]:
    lines = (run_dir / "train_log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "step"]


def test_two_gloo_processes_match_one_process(data_and_backbone: tuple[Path, Path], tmp_path: Path) -> None:
    data, backbone = data_and_backbone
    # 12 examples in global batches of 5: parts of 3+2, 3+2 and 1+1
    settings = TrainSettings(epochs=2, batch_size=5, lr=1e-3, seed=3, device="cpu")
    request = GroundingFinetuneRequest(data=str(data), out=str(tmp_path / "one"), backbone=str(backbone))
    single = run(replace(request, train=settings))

    args = ["finetune", "--data", str(data), "--out", str(tmp_path / "two"), "--backbone", str(backbone),
            "--epochs", "2", "--batch-size", "5", "--lr", "1e-3", "--seed", "3",
            "--device", "cpu"]  # fmt: skip
    done = _torchrun(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    two = tmp_path / "two"
    metrics = json.loads((two / "metrics.json").read_text())
    assert metrics["best_epoch"] == single.best_epoch
    for ours, reference in zip(metrics["history"], single.history, strict=True):
        assert ours.keys() == reference.keys()
        for key, value in reference.items():
            assert ours[key] == pytest.approx(value, abs=METRIC_TOLERANCE), key
    # rank 0 alone wrote the log: one record per global step, each the mean over the global batch
    steps, reference_steps = _steps(two), _steps(tmp_path / "one")
    assert len(steps) == len(reference_steps) == 2 * 3
    worst = 0.0
    for ours, reference in zip(steps, reference_steps, strict=True):
        assert ours.keys() == reference.keys()
        assert (ours["event"], ours["epoch"], ours["step"]) == (reference["event"], reference["epoch"],
                                                                reference["step"])  # fmt: skip
        for key in (k for k in reference if k.startswith("loss")):
            worst = max(worst, abs(ours[key] - reference[key]) / abs(reference[key]))
            assert ours[key] == pytest.approx(reference[key], rel=LOSS_TOLERANCE), key
    print(f"largest relative difference of a logged loss, 2 ranks vs 1: {worst:.2e}")
    preds = (two / "best_val_preds.jsonl").read_text().splitlines()
    assert [json.loads(p)["qid"] for p in preds] == [
        json.loads(p)["qid"] for p in (tmp_path / "one" / "best_val_preds.jsonl").read_text().splitlines()
    ]
    assert (two / "best" / "adapter_model.safetensors").is_file()


class _ShardableRegression:
    """y = x w on 9 examples: global batches of 4, 4 and 1, so one rank's last part is empty.

    Provides the sharding methods but not the sharded evaluation (rank 0 evaluates alone).
    nan_on_rank: that rank's second step returns NaN (the others' stay finite).
    """

    def __init__(self, nan_on_rank: int | None = None) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(9, 4, generator=g)  # (N, 4)
        self.y = self.x @ torch.randn(4, 1, generator=g)  # (N, 1)
        self.nan_on_rank, self.steps = nan_on_rank, 0

    def num_train_batches(self, batch_size: int) -> int:
        return -(-len(self.x) // batch_size)

    def train_index_batches(self, batch_size: int, generator: torch.Generator) -> Any:
        return batches_of(torch.randperm(len(self.x), generator=generator).tolist(), batch_size)

    def train_collate(self, indices: list[int]) -> torch.Tensor:
        return torch.tensor(indices)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Any:
        return map(self.train_collate, self.train_index_batches(batch_size, generator))

    def train_step(self, model: torch.nn.Module, batch: torch.Tensor, device: torch.device) -> StepOutput:
        self.steps += 1
        mse = torch.nn.functional.mse_loss(model(self.x[batch]), self.y[batch])
        if self.steps == 2 and self.nan_on_rank == distributed.current().rank:
            mse = mse * float("nan")
        return StepOutput(total=mse, parts={"loss_mse": mse})

    def evaluate(self, model: torch.nn.Module, device: torch.device) -> EvalOutput:
        return EvalOutput(metrics={"mse": float(torch.nn.functional.mse_loss(model(self.x), self.y))})


TOY = TrainSettings(
    epochs=2, lr=0.1, batch_size=4, seed=1, grad_clip=0, select_metric="mse", select_mode="min"
)


def _toy_model() -> torch.nn.Module:
    torch.manual_seed(2)
    return torch.nn.Linear(4, 1)


def _join_env(rank: int, port: int) -> None:
    """What torchrun would set for rank `rank` of 2."""
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)


def _toy_worker(rank: int, port: int, out: str, nan_on_rank: int | None) -> None:
    _join_env(rank, port)
    with distributed.process_group("cpu"):
        model = _toy_model()
        try:
            result = train(model, _ShardableRegression(nan_on_rank), TOY, Path(out))
            record: dict[str, Any] = {"history": result.state.history, "weight": model.weight.tolist()}
        except TrainingError as err:
            record = {"error": str(err)}
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(record))


def _spawn_two(out: Path, extra: Any, worker: Any = _toy_worker) -> list[dict[str, Any]]:
    """Run `worker(rank, port, out, extra)` as ranks 0 and 1; their `out/rank{r}.json` records."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.start_processes(worker, args=(port, str(out), extra), nprocs=2, start_method="spawn")
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_loop_under_two_processes_handles_an_empty_part_and_stops_together(tmp_path: Path) -> None:
    reference = _toy_model()
    expected = train(reference, _ShardableRegression(), TOY, tmp_path / "one")
    ranks = _spawn_two(tmp_path / "two", None)
    for record in ranks:  # both ranks end with the one-process weights and metrics
        torch.testing.assert_close(torch.tensor(record["weight"]), reference.weight, atol=1e-6, rtol=0)
        assert [h["mse"] for h in record["history"]] == pytest.approx(
            [h["mse"] for h in expected.state.history], abs=1e-6
        )
    (tmp_path / "nan").mkdir()
    stopped = _spawn_two(tmp_path / "nan", 1)  # rank 1's second step is NaN
    message = "loss became non-finite at epoch 1, step 2 (in loss_mse)"
    assert all(message in record.get("error", "") for record in stopped), stopped
    assert not (tmp_path / "nan" / "checkpoints").exists()  # nothing written for the broken epoch


def test_a_task_without_sharding_methods_is_refused_under_two_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "current", lambda: Dist(rank=0, world=2))  # refused before any collective
    methods = ("__init__", "num_train_batches", "train_batches", "train_step", "evaluate")
    plain = type("Plain", (), {name: getattr(_ShardableRegression, name) for name in methods})
    refused = "Plain cannot train under 2 processes: it lacks train_index_batches and train_collate"
    with pytest.raises(TrainingError, match=refused):
        train(_toy_model(), plain(), TOY, tmp_path / "plain")
    with pytest.raises(InvalidValueError, match="--batch-size 1 is the global batch"):
        train(_toy_model(), _ShardableRegression(), replace(TOY, batch_size=1), tmp_path / "small")


# --------------------------------------------------------------- highlight detection (UMT) on 2 ranks

HIGHLIGHT = TrainSettings(
    epochs=2, lr=1e-3, batch_size=3, seed=4, device="cpu", select_metric="mAP-avg"
)  # 7 videos: global batches 3, 3, 1 -> parts 2+1, 2+1 and 1+stand-in


def _highlight_data(root: Path) -> Path:
    """YouTube-Highlights-like rows of 5 to 12 clips, so each rank pads to its own longest video."""
    rng = np.random.default_rng(7)
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    for split, lengths in (("train", [5, 12, 7, 9, 6, 11, 8]), ("val", [10, 6, 8, 7])):
        for i, n in enumerate(lengths):
            match = [int(m) for m in rng.choice([-1, 0, 1], size=n)]
            match[0], match[1] = 1, 0  # every video has a highlight and a non-highlight
            rows[split].append(youtube_row(f"{split}{i}", "dog" if i % 2 else "skiing", match))
    return write_dataset(root, rows)


def _highlight_task(data: Path) -> HighlightTask:
    train, val = (load_grounding_split(data, split).dataset for split in ("train", "val"))
    truth = [json.loads(line) for line in (data / "val.jsonl").read_text().splitlines()]
    return HighlightTask(train, val, truth, "youtube")


def _tiny_umt() -> torch.nn.Module:
    torch.manual_seed(5)  # the same weights in every process; no dropout (masks differ per rank)
    config = tiny_umt_config(v_feat_dim=VIDEO_DIM, dropout=0.0, input_dropout=0.0, query_dropout=0.0)
    return build_backbone(config)


def _train_highlights(data: Path, out: Path) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    model = _tiny_umt()
    result = train(model, _highlight_task(data), HIGHLIGHT, out, write_log=steps.append)
    # attention key biases shift every logit of a query alike: their gradient is 0 up to rounding,
    # which AdamW scales up to steps of about lr in either direction; every other weight is compared
    weights = torch.cat(
        [p.detach().flatten() for n, p in model.named_parameters() if not n.endswith(".k.bias")]
    )
    weights = weights.tolist()
    return {"steps": [r for r in steps if r["event"] == "step"], "history": result.state.history,
            "weights": weights}  # fmt: skip


def _highlight_worker(rank: int, port: int, out: str, data: str) -> None:
    _join_env(rank, port)
    with distributed.process_group("cpu"):
        record = _train_highlights(Path(data), Path(out))
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(record))


def test_highlight_task_on_two_processes_matches_one_process(tmp_path: Path) -> None:
    data = _highlight_data(tmp_path / "data")
    single = _train_highlights(data, tmp_path / "one")
    ranks = _spawn_two(tmp_path / "two", str(data), worker=_highlight_worker)
    steps = ranks[0]["steps"]  # rank 0 alone logs: the global-batch means
    assert ranks[1]["steps"] == [] and len(steps) == len(single["steps"]) == 2 * 3
    for ours, reference in zip(steps, single["steps"], strict=True):
        assert ours.keys() == reference.keys() == {"event", "epoch", "step", "loss", "loss_saliency"}
        for key in ("loss", "loss_saliency"):
            assert ours[key] == pytest.approx(reference[key], rel=LOSS_TOLERANCE), key
    for record in ranks:
        # AdamW divides by sqrt(v), so a coordinate whose gradient is ~0 turns float rounding into a
        # visible step: 1e-5 seen on one of 45,188 weights. A tenth of one lr step (1e-4) still fails
        # loudly on a real error (wrong share weighting left the weights 6.6e-3 apart).
        torch.testing.assert_close(torch.tensor(record["weights"]), torch.tensor(single["weights"]),
                                   rtol=0, atol=0.1 * HIGHLIGHT.lr)  # fmt: skip
        for ours, reference in zip(record["history"], single["history"], strict=True):
            assert ours == pytest.approx(reference, abs=METRIC_TOLERANCE)
