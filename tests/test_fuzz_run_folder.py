"""A fuzzer for `finetune --resume`: damaged copies of a real run folder, and the promise as the property.

Hypothesis damages a copy of one small finished run (1 to 3 mutations: delete, empty, truncate,
garble or replace a file, turn it into a folder, change a value in a JSON record or a line of the log,
point LATEST elsewhere, add a copy of the checkpoint under another epoch, change one value of a
well-formed optimiser state or one tensor of a well-formed safetensors file) and resumes it through
the CLI. Either the resume is refused (exit 1, exactly one `error:` line, no traceback, the folder
byte-for-byte unchanged), or it succeeds and the history of the two completed epochs is intact.
Profiles (tests/conftest.py): "ci" runs a small fixed budget; HYPOTHESIS_PROFILE=long searches for as
long as a maintainer likes. docs/reliability.md, "Resume and run folders".
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from run_folder_inputs import EPOCHS, digest, trained_run
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from readcli.cli import app

runner = CliRunner()
# a file to which every example appends its outcome (a long run's tally survives stopping it)
RECORD = os.environ.get("READCLI_FUZZ_RECORD")
OPERATIONS = ("delete", "empty", "truncate", "garble", "replace", "folder", "json", "line", "name", "copy")
# what LATEST is set to by "name": checkpoint-like names, paths out of the folder, odd spacing
NAMES = st.sampled_from(
    ["epoch-0001", "epoch-0003", "epoch-9999", "epoch-0000", "epoch-2", " epoch-0002 ", "../run",
     "epoch-0002/../epoch-0002", "/etc", ".", "", "\x00", ".epoch-0003.partial"]
) | st.from_regex(r"epoch-[0-9]{1,7}", fullmatch=True)  # fmt: skip
# values a JSON field is changed to: wrong types, out-of-range and edge numbers, NaN/inf tokens
JSON_VALUES = st.one_of(
    st.sampled_from([-5, -1, 0, 1, 2, 3, 7, 10**6, 2**63, 10**400, 0.5, -0.0, 1e300]),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@pytest.fixture(scope="session")
def fuzz_base(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, Any]:
    made = trained_run(tmp_path_factory.mktemp("fuzz-run"), shared_data)
    run = made["run"]
    targets = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    # the checkpoint's files weigh more: they are what a resume loads
    targets += [t for t in targets if t.startswith("checkpoints/")] * 2
    history = json.loads((run / "metrics.json").read_text())["history"]
    return {"run": run, "targets": targets, "history": history}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a JSON value (the value itself is the empty path)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _set(value[head], tuple(rest), new)
    return copy


def _mutate_json(data: st.DataObject, text: str) -> str:
    try:
        value = json.loads(text)
    except ValueError:  # already damaged by an earlier mutation: left as it is
        return text
    path = data.draw(st.sampled_from(_paths(value)), label="json path")
    if path and data.draw(st.booleans(), label="drop the field") and isinstance(path[-1], str):
        parent = path[:-1]
        holder = value
        for key in parent:
            holder = holder[key]
        return json.dumps(_set(value, parent, {k: v for k, v in holder.items() if k != path[-1]}))
    return json.dumps(_set(value, path, data.draw(JSON_VALUES, label="json value")))


TENSORS = st.one_of(
    st.lists(st.integers(0, 4), max_size=3).map(lambda shape: torch.zeros(shape)),
    st.sampled_from([torch.tensor(float("nan")), torch.ones(3, dtype=torch.int64), torch.tensor(-1.0)]),
)


def _mutate_optimizer(data: st.DataObject, path: Path) -> None:
    """A well-formed optimiser state with one value changed: a tensor, a number, a type or a key."""
    try:
        state = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - already damaged by an earlier mutation
        return
    where = data.draw(st.sampled_from(_paths(state)), label="optimizer path")
    torch.save(_set(state, where, data.draw(TENSORS | JSON_VALUES, label="optimizer value")), path)


def _mutate_tensors(data: st.DataObject, path: Path) -> None:
    """Well-formed safetensors with one tensor dropped, reshaped, retyped, made NaN, or one added."""
    try:
        tensors = load_file(path)
    except Exception:  # noqa: BLE001 - already damaged by an earlier mutation
        return
    name = data.draw(st.sampled_from(sorted(tensors)), label="tensor")
    change = data.draw(st.sampled_from(["drop", "shape", "dtype", "nan", "extra"]), label="tensor change")
    if change == "drop":
        del tensors[name]
    elif change == "shape":
        tensors[name] = data.draw(TENSORS, label="new tensor").float()
    elif change == "dtype":
        tensors[name] = tensors[name].to(torch.float16 if data.draw(st.booleans()) else torch.int32)
    elif change == "nan":
        tensors[name] = tensors[name].clone().flatten().index_fill(0, torch.tensor([0]), float("nan"))
        tensors[name] = tensors[name].reshape(load_file(path)[name].shape)
    else:
        tensors["extra.weight"] = torch.zeros(2)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


def _mutate(data: st.DataObject, run: Path, target: str) -> None:
    path = run / target
    if not path.exists():
        return
    if path.name in ("optimizer.pt", "trainable.safetensors") and data.draw(st.booleans(), label="in form"):
        (_mutate_optimizer if path.suffix == ".pt" else _mutate_tensors)(data, path)
        return
    operation = data.draw(st.sampled_from(OPERATIONS), label=f"operation on {target}")
    if operation == "copy":  # another checkpoint folder beside the real one (older, next, or far ahead)
        number = data.draw(st.integers(1, 6), label="copied checkpoint's epoch")
        source, copy = run / "checkpoints" / "epoch-0002", run / "checkpoints" / f"epoch-{number:04d}"
        if source.is_dir() and not copy.exists():
            shutil.copytree(source, copy)
        return
    if operation == "name":
        if not (run / "checkpoints").is_dir():
            return
        latest = run / "checkpoints" / "LATEST"
        if latest.is_dir():
            shutil.rmtree(latest)
        latest.write_text(data.draw(NAMES, label="LATEST") + "\n")
        return
    if operation == "delete":
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        return
    if path.is_dir():  # the other operations change files
        return
    raw = path.read_bytes()
    if operation == "empty":
        path.write_bytes(b"")
    elif operation == "truncate":
        path.write_bytes(raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)), label="keep bytes")])
    elif operation == "garble" and raw:
        changed = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 8), label="bytes garbled")):
            position = data.draw(st.integers(0, len(raw) - 1), label="garbled byte")
            changed[position] = data.draw(st.integers(0, 255), label="new byte")
        path.write_bytes(bytes(changed))
    elif operation == "replace":
        path.write_bytes(data.draw(st.binary(max_size=64) | st.text(max_size=40).map(str.encode)))
    elif operation == "folder":
        path.unlink()
        path.mkdir()
    elif operation == "json" and path.suffix == ".json":
        path.write_text(_mutate_json(data, raw.decode(errors="replace")))
    elif operation == "line" and path.suffix == ".jsonl" and raw.strip():
        lines = raw.decode(errors="replace").splitlines()
        index = data.draw(st.integers(0, len(lines) - 1), label="line")
        if data.draw(st.booleans(), label="change a value of the line"):
            lines[index] = _mutate_json(data, lines[index])
        else:
            lines[index] = data.draw(st.text(max_size=30), label="new line")
        path.write_text("\n".join(lines) + "\n")


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_damaged_run_folder_is_refused_unchanged_or_resumed_with_its_history(
    fuzz_base: dict[str, Any], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        run = Path(scratch) / "run"
        shutil.copytree(fuzz_base["run"], run, symlinks=True)
        for _ in range(data.draw(st.integers(1, 3), label="mutations")):
            _mutate(data, run, data.draw(st.sampled_from(fuzz_base["targets"]), label="target"))
        epochs = data.draw(st.sampled_from([EPOCHS, EPOCHS + 1]), label="--epochs")
        before = digest(run)
        result = runner.invoke(app, ["finetune", "--resume", str(run), "--epochs", str(epochs)])
        assert "Traceback" not in result.output and "weights_only" not in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        if result.exit_code == 0:
            history = json.loads((run / "metrics.json").read_text())["history"]
            assert history[:EPOCHS] == fuzz_base["history"]
            _record("resumed", "")
            return
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        assert digest(run) == before, lines[0]
        _record("refused", lines[0].replace(str(run), "RUN"))


def _record(outcome: str, line: str) -> None:
    if RECORD:
        with open(RECORD, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"outcome": outcome, "error": line}) + "\n")
