"""`finetune --resume` on damaged run folders: refused in one line, the folder byte-for-byte unchanged.

One finished 2-epoch run is built per module; each case damages a copy of it, resumes through the CLI
in this process, and checks the promise (docs/reliability.md, "Resume and run folders"): exit code 1,
exactly one stderr line starting `error:` that names the file, no traceback, torch's unsafe-load
advice never shown, no pickle run, and every file of the folder unchanged.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from reliability_inputs import RunsCode
from run_folder_inputs import EPOCHS, digest, trained_run
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from readcli.cli import app

runner = CliRunner()
CKPT = "checkpoints/epoch-0002"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, Path]:
    return trained_run(tmp_path_factory.mktemp("resume"), shared_data)


def _json(run: Path, name: str, change: Callable[[Any], Any]) -> None:
    path = run / name
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _state(**values: Any) -> Callable[[Path], None]:
    return lambda run: _json(run, f"{CKPT}/state.json", lambda s: {**s, **values})


def _train(**values: Any) -> Callable[[Path], None]:
    return lambda run: _json(run, "run.json", lambda q: {**q, "train": {**q["train"], **values}})


def _write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        raw = data.encode() if isinstance(data, str) else data
        (run / name).write_bytes(raw)

    return apply


def _remove(name: str) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        path = run / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return apply


def _truncate(name: str, keep: float) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: int(len(data) * keep)])

    return apply


def _optimizer(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        path = run / CKPT / "optimizer.pt"
        state = torch.load(path, weights_only=True)
        torch.save(change(state), path)

    return apply


def _groups_do_not_fit(state: dict[str, Any]) -> dict[str, Any]:
    group = state["param_groups"][0]
    return {**state, "param_groups": [{**group, "params": group["params"][:-1]}]}


def _other_lr(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "param_groups": [{**state["param_groups"][0], "lr": 5.0}]}


def _moment_shape(state: dict[str, Any]) -> dict[str, Any]:
    first = next(iter(state["state"]))
    state["state"][first]["exp_avg"] = torch.zeros(3, 3)
    return state


def _string_index(state: dict[str, Any]) -> dict[str, Any]:
    group = state["param_groups"][0]
    return {**state, "param_groups": [{**group, "params": ["a", *group["params"][1:]]}]}


def _vector_step(state: dict[str, Any]) -> dict[str, Any]:
    first = next(iter(state["state"]))
    state["state"][first]["step"] = torch.ones(4)
    return state


def _nan_tensor(run: Path) -> None:
    path = run / CKPT / "trainable.safetensors"
    tensors = load_file(path)
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, str(path))


def _pickled_optimizer(run: Path) -> None:
    torch.save({"state": RunsCode(run.parent / "MARKER"), "param_groups": []}, run / CKPT / "optimizer.pt")


def _log_line(index: int, text: str) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        lines = (run / "train_log.jsonl").read_text().splitlines()
        lines[index] = text
        (run / "train_log.jsonl").write_text("\n".join(lines) + "\n")

    return apply


def _edited_eval(run: Path) -> None:
    lines = (run / "train_log.jsonl").read_text().splitlines()
    evals = [i for i, line in enumerate(lines) if '"eval"' in line]
    record = json.loads(lines[evals[0]])
    record["MR-full-mAP"] = 99.0
    lines[evals[0]] = json.dumps(record)
    (run / "train_log.jsonl").write_text("\n".join(lines) + "\n")


def _no_checkpoints_but_latest_gone(run: Path) -> None:
    (run / "checkpoints" / "LATEST").unlink()


def _only_run_json_and_best(run: Path) -> None:
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").mkdir()


@dataclass(frozen=True)
class Case:
    name: str
    damage: Callable[[Path], None]
    needles: tuple[str, ...]  # the error line holds each ({run}: the run folder)
    args: tuple[str, ...] = ("--epochs", "3")


DEEP = "[" * 100_000 + "]" * 100_000
# fmt: off
CASES = [
    # --- LATEST ---
    Case("latest-names-a-missing-checkpoint", _write("checkpoints/LATEST", "epoch-9999\n"),
         ("LATEST", "epoch-9999", "not a checkpoint folder", "epoch-0002")),
    Case("latest-escapes-the-folder", _write("checkpoints/LATEST", "../../../../../etc\n"),
         ("LATEST", "'../../../../../etc' is not a checkpoint name")),
    Case("latest-absolute-path", _write("checkpoints/LATEST", "/etc\n"), ("LATEST", "'/etc'")),
    Case("latest-dot-dot", _write("checkpoints/LATEST", "..\n"), ("LATEST", "'..'")),
    Case("latest-empty", _write("checkpoints/LATEST", ""), ("LATEST", "'' is not a checkpoint name")),
    Case("latest-binary", _write("checkpoints/LATEST", bytes(range(200, 250))), ("LATEST", "binary")),
    Case("latest-huge", _write("checkpoints/LATEST", "epoch-0002" + " " * 10_000), ("LATEST", "larger than")),
    Case("latest-a-folder", lambda r: (_remove("checkpoints/LATEST")(r), (r / "checkpoints/LATEST").mkdir()),
         ("LATEST", "not a regular file")),
    Case("latest-missing-with-a-later-checkpoint", _no_checkpoints_but_latest_gone,
         ("LATEST", "missing", "epoch-0002")),
    # --- the checkpoints folder ---
    Case("checkpoints-missing", _remove("checkpoints"), ("checkpoints", "missing", "another --out")),
    Case("checkpoints-a-file", lambda r: (_remove("checkpoints")(r), (r / "checkpoints").write_text("x")),
         ("checkpoints", "not a folder")),
    Case("checkpoints-emptied-of-a-finished-run", _only_run_json_and_best,
         ("metrics.json", "no checkpoint names them")),
    # --- state.json: counters in range ---
    Case("epochs-done-negative", _state(epochs_done=-5),
         ("state.json", "epochs_done", "-5", "greater than or equal to 0")),
    Case("epochs-done-huge", _state(epochs_done=10**6),
         ("state.json", "epochs_done 1000000 is out of range")),
    Case("epochs-done-string", _state(epochs_done="one"), ("state.json", "epochs_done", "'one'", "integer")),
    Case("epochs-done-bool", _state(epochs_done=True), ("state.json", "epochs_done", "True")),
    Case("epochs-done-float", _state(epochs_done=2.0), ("state.json", "epochs_done", "2.0")),
    Case("epochs-done-zero", _state(epochs_done=0), ("state.json", "epochs_done 0 is out of range")),
    Case("epochs-done-not-its-folder", _state(epochs_done=1), ("state.json", "epochs_done 1", "must be 2")),
    Case("global-step-wrong", _state(global_step=7), ("state.json", "global_step 7 does not fit", "make 6")),
    Case("global-step-negative", _state(global_step=-1), ("state.json", "global_step")),
    Case("best-epoch-out-of-range", _state(best_epoch=5), ("state.json", "best_epoch 5 is out of range")),
    Case("best-score-a-string", _state(best_score="high"), ("state.json", "best_score")),
    Case("history-short", _state(history=[]), ("state.json", "history holds epochs []")),
    Case("history-a-string-metric", lambda r: _json(r, f"{CKPT}/state.json", lambda s: {
         **s, "history": [{**s["history"][0], "MR-full-mAP": "x"}, s["history"][1]]}),
         ("state.json", "MR-full-mAP")),
    Case("state-unknown-field", _state(epochs_don=2), ("state.json", "unknown field 'epochs_don'")),
    Case("state-garbage", _write(f"{CKPT}/state.json", b"\x00{garbage"), ("state.json",)),
    Case("state-not-json", _write(f"{CKPT}/state.json", "{epochs_done: 2"), ("state.json", "not valid JSON")),
    Case("state-deeply-nested", _write(f"{CKPT}/state.json", DEEP), ("state.json", "nested deeper")),
    Case("state-a-list", _write(f"{CKPT}/state.json", "[]"), ("state.json",)),
    Case("state-missing", _remove(f"{CKPT}/state.json"), ("state.json", "missing")),
    Case("state-nan-constant", _write(f"{CKPT}/state.json", '{"epochs_done": NaN}'),
         ("state.json", "NaN")),
    # --- trainable.safetensors ---
    Case("tensors-truncated", _truncate(f"{CKPT}/trainable.safetensors", 0.5),
         ("trainable.safetensors", "not a readable safetensors file")),
    Case("tensors-empty", _write(f"{CKPT}/trainable.safetensors", b""), ("trainable.safetensors",)),
    Case("tensors-missing", _remove(f"{CKPT}/trainable.safetensors"), ("trainable.safetensors", "missing")),
    Case("tensors-nan", _nan_tensor, ("trainable.safetensors", "not all finite")),
    # --- optimizer.pt ---
    Case("optimizer-missing", _remove(f"{CKPT}/optimizer.pt"), ("optimizer.pt", "missing")),
    Case("optimizer-garbage", _write(f"{CKPT}/optimizer.pt", bytes(range(256)) * 4), ("optimizer.pt",)),
    Case("optimizer-empty", _write(f"{CKPT}/optimizer.pt", b""), ("optimizer.pt",)),
    Case("optimizer-truncated", _truncate(f"{CKPT}/optimizer.pt", 0.5), ("optimizer.pt",)),
    Case("optimizer-pickled-code", _pickled_optimizer, ("optimizer.pt", "refused to unpickle")),
    Case("optimizer-groups-do-not-fit", _optimizer(_groups_do_not_fit), ("optimizer.pt", "does not fit")),
    Case("optimizer-two-groups", _optimizer(lambda s: {**s, "param_groups": s["param_groups"] * 2}),
         ("optimizer.pt", "one parameter group")),
    Case("optimizer-other-lr", _optimizer(_other_lr), ("optimizer.pt", "lr is 5.0", "0.001")),
    Case("optimizer-moment-shape", _optimizer(_moment_shape), ("optimizer.pt", "exp_avg", "(3, 3)")),
    Case("optimizer-a-list", _optimizer(lambda s: [1, 2]), ("optimizer.pt", "not an optimiser state")),
    Case("optimizer-string-index", _optimizer(_string_index), ("optimizer.pt", "does not fit")),
    Case("optimizer-step-a-vector", _optimizer(_vector_step), ("optimizer.pt", "not a count")),
    # --- metrics.json and train_log.jsonl ---
    Case("metrics-garbage", _write("metrics.json", "not json at all"), ("metrics.json", "not valid JSON")),
    Case("metrics-wrong-types", lambda r: _json(r, "metrics.json", lambda m: {**m, "best_epoch": "1"}),
         ("metrics.json", "best_epoch")),
    Case("metrics-other-history", lambda r: _json(r, "metrics.json", lambda m: {
         **m, "history": [{**m["history"][0], "MR-full-mAP": 99.0}, *m["history"][1:]]}),
         ("metrics.json", "is not the history")),
    Case("log-broken-line", _log_line(2, '{"event": "step", "epo'), ("train_log.jsonl:3", "not valid JSON")),
    Case("log-wrong-event", _log_line(0, '{"event": "boom", "epoch": 1}'), ("train_log.jsonl:1", "event")),
    Case("log-deeply-nested", _log_line(1, DEEP), ("train_log.jsonl:2", "nested deeper")),
    Case("log-edited-evaluation", _edited_eval, ("train_log.jsonl", "evaluation of epoch 1")),
    Case("log-missing", _remove("train_log.jsonl"), ("train_log.jsonl", "missing")),
    Case("log-binary", _write("train_log.jsonl", b"\xff\xfe\x00\x01"), ("train_log.jsonl", "not UTF-8")),
    # --- run.json ---
    Case("run-json-garbage", _write("run.json", "{"), ("run.json", "not valid JSON")),
    Case("run-json-wrong-type", _train(lr="x"), ("run.json", "train.lr")),
    Case("run-json-bad-epochs", _train(epochs=0), ("run.json", "--epochs 0")),
    Case("run-json-unknown-field", lambda r: _json(r, "run.json", lambda q: {**q, "zzz": 1}),
         ("run.json", "unknown field 'zzz'")),
    # --- options given again on resume ---
    Case("fewer-epochs-than-done", lambda r: None, ("--epochs 1 is fewer than the 2 epochs",),
         ("--epochs", "1")),
    Case("other-lr", lambda r: None, ("--lr 0.5 differs", "0.001", "run.json"), ("--lr", "0.5")),
    Case("other-method", lambda r: None, ("--method 'lora' differs", "'read'"), ("--method", "lora")),
    Case("other-backbone", lambda r: None, ("--backbone", "differs", "backbone"),
         ("--backbone", "moment-detr-clip")),
    Case("other-data", lambda r: None, ("--data", "differs"), ("--data", "/tmp")),
    Case("other-out", lambda r: None, ("--out /tmp differs from --resume",), ("--out", "/tmp")),
    Case("other-seed", lambda r: None, ("--seed 4 differs", "3"), ("--seed", "4")),
    Case("no-pvla", lambda r: None, ("--pvla False differs", "True"), ("--no-pvla",)),
]
# fmt: on


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_a_damaged_run_folder_is_refused_in_one_line_and_left_unchanged(
    case: Case, base: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(base["run"], run, symlinks=True)
    case.damage(run)
    before = digest(run)
    result = runner.invoke(app, ["finetune", "--resume", str(run), *case.args])
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in case.needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in result.output and "weights_only" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert digest(run) == before
    assert not (tmp_path / "MARKER").exists()


def test_the_undamaged_folder_resumes_and_keeps_its_history(base: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(base["run"], run)
    history = json.loads((run / "metrics.json").read_text())["history"]
    same = runner.invoke(app, ["finetune", "--resume", str(run), "--lr", "0.001", "--method", "read"])
    assert same.exit_code == 0, same.output  # options equal to the recorded ones are accepted
    result = runner.invoke(app, ["finetune", "--resume", str(run), "--epochs", "3", "--device", "auto"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["history"][:EPOCHS] == history and len(metrics["history"]) == 3
    recorded = json.loads((run / "run.json").read_text())["train"]
    assert (recorded["epochs"], recorded["device"]) == (3, "auto")  # applied and recorded for the next resume
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["LATEST", "epoch-0003"]


def test_a_kill_between_a_checkpoint_and_its_latest_resumes(base: dict[str, Path], tmp_path: Path) -> None:
    """epoch-0002 complete but LATEST still at epoch-0001 (a kill in between): resume replays epoch 2."""
    run = tmp_path / "run"
    shutil.copytree(base["run"], run)
    history = json.loads((run / "metrics.json").read_text())["history"]
    (run / "metrics.json").unlink()  # a killed run has none yet
    first = tmp_path / "epoch1"
    args = ["finetune", "--data", str(base["data"]), "--backbone", str(base["backbone"]), "--out",
            str(first), "--epochs", "1", "--batch-size", "4", "--lr", "1e-3", "--seed", "3"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    shutil.copytree(first / "checkpoints" / "epoch-0001", run / "checkpoints" / "epoch-0001")
    (run / "checkpoints" / "LATEST").write_text("epoch-0001\n")
    result = runner.invoke(app, ["finetune", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "metrics.json").read_text())["history"] == history
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["LATEST", "epoch-0002"]


def test_resume_from_another_directory_uses_the_recorded_absolute_paths(
    base: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(base["data"], work / "data")
    shutil.copytree(base["backbone"], work / "backbone")
    monkeypatch.chdir(work)
    args = ["finetune", "--data", "data", "--backbone", "backbone", "--out", "run", "--epochs", "1",
            "--batch-size", "4", "--device", "cpu"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    recorded = json.loads((work / "run" / "run.json").read_text())
    assert recorded["data"] == str(work / "data") and recorded["backbone"] == str(work / "backbone")
    assert recorded["out"] == str(work / "run")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(app, ["finetune", "--resume", "../work/run", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert len(json.loads((work / "run" / "metrics.json").read_text())["history"]) == 2
    # the same data given again, relative to this directory, is the recorded data: accepted
    again = runner.invoke(app, ["finetune", "--resume", "../work/run", "--data", "../work/data"])
    assert again.exit_code == 0, again.output


def test_pruning_removes_only_earlier_checkpoints(tmp_path: Path) -> None:
    from readcli.training.train_checkpoint import LoopState, save_checkpoint

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.AdamW(model.parameters())
    for epoch in (5, 1):  # a later one (as a kill before LATEST moved on leaves), and an earlier one
        save_checkpoint(tmp_path, model, optimizer, LoopState(epochs_done=epoch))
    save_checkpoint(tmp_path, model, optimizer, LoopState(epochs_done=3))
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["LATEST", "epoch-0003", "epoch-0005"]
    assert (tmp_path / "checkpoints" / "LATEST").read_text() == "epoch-0003\n"


def test_the_run_file_schema_names_exactly_the_request_fields() -> None:
    """run.json is read by RunRecord: a field added to FinetuneRequest or TrainSettings must be added
    there too, or a run that records it could never be resumed."""
    from dataclasses import fields

    from readcli.pipelines.finetune_request import REQUESTS, FinetuneRequest, GroundingFinetuneRequest
    from readcli.training.loop import TrainSettings
    from readcli.training.run_records import RunRecord, TrainRecord

    request_fields = {f.name for cls in REQUESTS.values() for f in fields(cls)}
    assert set(RunRecord.model_fields) == request_fields | {"task"}
    assert set(TrainRecord.model_fields) == {f.name for f in fields(TrainSettings)}
    request = GroundingFinetuneRequest(data="/d", out="/o")
    assert FinetuneRequest.from_json({"data": "/d", "out": "/o"}, Path("run.json")) == request
    for cls in REQUESTS.values():
        for request in (cls(data="/d", out="/o"), cls(data="/d", out="/o", rnn="gru", tau=0.1)):
            loaded = FinetuneRequest.from_json(request.to_json(), Path("run.json"))
            assert type(loaded) is cls and loaded.to_json() == request.to_json()


# run.json as readcli wrote it before the request was split by task: every field of both tasks
_BEFORE_SPLIT = {
    "data": "/d", "out": "/o", "task": "tlg", "backbone": "moment-detr-clip", "method": "read",
    "bottleneck": None, "rnn": "rnn", "pvla": True, "pvla_weight": 1.0, "mass": 0.5, "mass_mode": "fixed",
    "tau": 0.05, "train_samples": 8, "skip_missing": False,
    "train": {"epochs": 3, "lr": 0.001, "weight_decay": 0.0001, "batch_size": 4, "grad_clip": 0.1,
              "seed": 3, "device": "cpu", "amp": "auto", "select_metric": "MR-full-mAP",
              "select_mode": "max"},
    "video_dim": None, "fusion_options": None, "beams": 5, "no_repeat_ngram_size": 3,
    "max_summary_length": 64, "dataset": None, "domain": None,
}  # fmt: skip


def test_run_files_written_before_the_task_split_still_load() -> None:
    """An older run.json holds the other task's fields too (they never had an effect): they are
    dropped, and the task's own fields and the loop's settings are kept."""
    from readcli.pipelines.finetune_request import (
        FinetuneRequest,
        GroundingFinetuneRequest,
        SummarizationFinetuneRequest,
    )

    tlg = FinetuneRequest.from_json(_BEFORE_SPLIT, Path("run.json"))
    assert isinstance(tlg, GroundingFinetuneRequest) and not hasattr(tlg, "beams")
    assert tlg.train_samples == 8 and tlg.train.epochs == 3 and tlg.train.lr == 0.001
    vls_file = {**_BEFORE_SPLIT, "task": "vls", "backbone": "bart-base-vg", "beams": 2, "video_dim": 12}
    vls_file["train"] = {**_BEFORE_SPLIT["train"], "select_metric": "rougeL"}
    vls = FinetuneRequest.from_json(vls_file, Path("run.json"))
    assert isinstance(vls, SummarizationFinetuneRequest) and not hasattr(vls, "domain")
    assert vls.beams == 2 and vls.video_dim == 12 and vls.train.select_metric == "rougeL"
    assert set(vls.to_json()) == set(_BEFORE_SPLIT) - {"dataset", "domain"}


def test_the_run_file_keeps_fusion_options() -> None:
    """A vision-guided run's --fusion-option values (JSON scalars) are part of its run.json."""
    from readcli.records import validate
    from readcli.training.run_records import RunRecord

    options = {"cross_attn_type": 5, "mask_padding": True, "fusion_heads": None, "dropout": 0.1}
    record = validate(RunRecord, {"data": "/d", "out": "/o", "fusion_options": options}, "run.json")
    assert record.fusion_options == options
