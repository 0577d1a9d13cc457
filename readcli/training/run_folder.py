"""A run folder checked whole before a resume touches anything in it (docs/training.md, "Resume guarantees").

`read_checkpoint` reads what `checkpoints/LATEST` names: the name must be one `save_checkpoint` writes
(`epoch-NNNN`, a folder inside `checkpoints/`), and its three files must read and agree
(`state.json` by schema, with counters in range; `trainable.safetensors`; `optimizer.pt`, loaded
safely). `inspect_run_folder` adds what the finetune pipeline keeps beside it: `checkpoints/` must
exist, `metrics.json` and `train_log.jsonl` must parse and agree with the checkpoint, and a run with
no checkpoint restarts only when a restart destroys nothing but the first epoch's own output.
Every refusal is one line naming the file and what is wrong; nothing here writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from readcli.backbones.checkpoint import load_safetensors, safe_torch_load
from readcli.errors import CheckpointError, InputFileError, InvalidValueError
from readcli.records import parse_json, read_json_file, validate
from readcli.training.resume_point import ResumePoint
from readcli.training.run_records import LogRecord, MetricsRecord, StateRecord
from readcli.training.train_checkpoint import CHECKPOINT_NAME, CHECKPOINTS, LATEST, LoopState

MAX_POINTER_BYTES = 64  # LATEST holds one short name
MAX_LOG_BYTES = 2 * 1024**3
BEST_DIR, METRICS_FILE, LOG_FILE = "best", "metrics.json", "train_log.jsonl"


def read_checkpoint(run_dir: Path, epochs: int, *, recorded_epochs: int | None = None) -> ResumePoint:
    """The checkpoint LATEST names, read and checked on its own; no LATEST: a restart at epoch 0.

    `epochs` is the number of epochs asked for now (--epochs), `recorded_epochs` the run's own
    (run.json): a checkpoint beyond the run's epochs is damaged, one beyond --epochs a wrong --epochs.
    """
    root = run_dir / CHECKPOINTS
    if root.exists() and not root.is_dir():
        raise InputFileError(
            f"{root}: not a folder (a run keeps its checkpoints in the folder {CHECKPOINTS}/)"
        )
    numbers = _checkpoint_numbers(root) if root.is_dir() else {}
    pointer = root / LATEST
    if not pointer.exists() and not pointer.is_symlink():
        later = sorted(n for n in numbers if n > 1)
        if later:  # only a kill between epoch 1's checkpoint and its LATEST leaves one without LATEST
            raise InputFileError(
                f"{pointer}: missing, but {root} holds {numbers[later[-1]]}: the checkpoint to continue "
                "from is unknown; restore LATEST (it names the newest complete checkpoint folder)"
            )
        return ResumePoint(run_dir)
    name, number = _read_pointer(pointer)
    checkpoint = root / name
    if not checkpoint.is_dir() or checkpoint.resolve().parent != root.resolve():
        raise InputFileError(
            f"{pointer}: names {name}, which is not a checkpoint folder in {root} "
            f"(folders there: {', '.join(sorted(numbers.values())) or 'none'})"
        )
    newer = sorted(n for n in numbers if n > number + 1)  # number + 1: a kill before LATEST moved on
    if newer:
        raise InputFileError(
            f"{pointer}: names {name}, but {root} also holds the newer {numbers[newer[-1]]}: "
            "LATEST should name the newest complete checkpoint"
        )
    state = _read_state(checkpoint / "state.json", number, epochs, recorded_epochs)
    tensors = load_safetensors(_regular_file(checkpoint / "trainable.safetensors"))
    optimizer_state = safe_torch_load(_regular_file(checkpoint / "optimizer.pt"))
    if not isinstance(optimizer_state, dict):
        raise CheckpointError(
            f"{checkpoint / 'optimizer.pt'}: holds a {type(optimizer_state).__name__}, not an optimiser state"
        )
    return ResumePoint(run_dir, checkpoint, state, tensors, optimizer_state)


def inspect_run_folder(run_dir: Path, epochs: int, *, recorded_epochs: int) -> ResumePoint:
    """Everything `finetune --resume` relies on, checked before the first write (see module docstring)."""
    root = run_dir / CHECKPOINTS
    if not root.exists():
        raise InputFileError(
            f"{root}: missing: {run_dir} has no checkpoints to continue from, and a restart would overwrite "
            "its files; start a new run with another --out"
        )
    point = read_checkpoint(run_dir, epochs, recorded_epochs=recorded_epochs)
    _check_metrics(run_dir / METRICS_FILE, point)
    if point.checkpoint is None:
        _check_restartable(run_dir)
    point.log_text = _kept_log(run_dir / LOG_FILE, point)
    return point


def _checkpoint_numbers(root: Path) -> dict[int, str]:
    found: dict[int, str] = {}
    for entry in root.iterdir():
        match = CHECKPOINT_NAME.fullmatch(entry.name)
        if match and entry.is_dir():
            found[int(match.group(1))] = entry.name
    return found


def _regular_file(path: Path) -> Path:
    if not path.is_file():
        what = "missing" if not path.exists() else "not a regular file"
        raise InputFileError(f"{path}: {what}: the checkpoint is incomplete")
    return path


def _read_pointer(pointer: Path) -> tuple[str, int]:
    raw = _read_bytes(pointer, MAX_POINTER_BYTES)
    try:
        name = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise InputFileError(
            f"{pointer}: not a checkpoint name (binary content); it should hold e.g. 'epoch-0003'"
        ) from None
    match = CHECKPOINT_NAME.fullmatch(name)
    if match is None or int(match.group(1)) < 1:
        shown = repr(name) if len(name) <= 40 else repr(name[:37] + "...")
        raise InputFileError(
            f"{pointer}: {shown} is not a checkpoint name: it should name a folder in "
            f"{pointer.parent} such as 'epoch-0003'"
        )
    return name, int(match.group(1))


def _read_bytes(path: Path, limit: int) -> bytes:
    if not path.is_file():
        raise InputFileError(f"{path}: not a regular file")
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as err:
        raise InputFileError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(raw) > limit:
        raise InputFileError(f"{path}: larger than {limit} bytes, more than readcli ever writes there")
    return raw


def _read_state(path: Path, number: int, epochs: int, recorded: int | None) -> LoopState:
    raw = read_json_file(_regular_file(path))
    record = validate(StateRecord, raw, str(path))
    done = record.epochs_done
    limit = recorded if recorded is not None else epochs
    if done != number or not 1 <= done <= max(limit, 1):
        raise InputFileError(
            f"{path}: epochs_done {done} is out of range: in {path.parent.name} of a run of "
            f"{limit} epoch(s) it must be {number}, within 1..{limit}"
        )
    if done > epochs:
        raise InvalidValueError(
            f"--epochs {epochs} is fewer than the {done} epochs this run has done ({path}): "
            f"give --epochs {done} or more to extend it"
        )
    numbers = [row.epoch for row in record.history]
    if numbers != list(range(1, done + 1)):
        raise InputFileError(
            f"{path}: history holds epochs {numbers[:6]}{'...' if len(numbers) > 6 else ''}, "
            f"expected 1..{done} in order"
        )
    if record.best_epoch is None or record.best_epoch > done:
        raise InputFileError(f"{path}: best_epoch {record.best_epoch} is out of range: use 1..{done}")
    if record.global_step < done:
        raise InputFileError(
            f"{path}: global_step {record.global_step} is out of range: {done} epochs take {done}+ steps"
        )
    return LoopState(**raw)


def _check_metrics(path: Path, point: ResumePoint) -> None:
    """metrics.json, when present, is a finished part of this run: its history must be the checkpoint's."""
    if not path.exists():
        return
    raw = read_json_file(path)
    record = validate(MetricsRecord, raw, str(path))
    done = point.state.epochs_done
    if point.checkpoint is None:
        raise InputFileError(
            f"{path}: records {len(record.history)} trained epoch(s), but no checkpoint names them "
            f"({point.run_dir / CHECKPOINTS / LATEST} is missing); a restart would overwrite them"
        )
    if len(record.history) > done or raw["history"] != point.state.history[: len(record.history)]:
        raise InputFileError(
            f"{path}: its history ({len(record.history)} epochs) is not the history of "
            f"{point.checkpoint}/state.json ({done} epochs): the folder mixes two runs or was edited"
        )


def _check_restartable(run_dir: Path) -> None:
    """No checkpoint yet: restart only if best/ is absent or is the first epoch's bundle (a kill before
    epoch 1's checkpoint leaves it; the replayed epoch 1 writes it again)."""
    best = run_dir / BEST_DIR
    if not best.exists():
        return
    config = best / "adapter_config.json"
    try:
        epoch = _bundle_epoch(read_json_file(config))
    except InputFileError as err:
        raise InputFileError(
            f"{best}: a trained bundle without a checkpoint to continue from ({err})"
        ) from None
    if epoch != 1:
        raise InputFileError(
            f"{best}: holds the bundle of epoch {epoch}, but {run_dir / CHECKPOINTS} names no checkpoint; "
            "a restart would overwrite it: move best/ elsewhere to restart"
        )


def _bundle_epoch(config: Any) -> Any:
    extra = config.get("extra") if isinstance(config, dict) else None
    return extra.get("epoch") if isinstance(extra, dict) else None


def _kept_log(path: Path, point: ResumePoint) -> str | None:
    """The log's lines of epochs 1..epochs_done (later ones are replayed). Every line must parse, and
    its evaluation records must be the checkpoint's history: the log is a second witness of the
    completed epochs, written before their checkpoint, so a run with a checkpoint must have one.

    A last line without its newline is a write a kill cut short: it belongs to an epoch after the
    checkpoint, so it is dropped, not refused.
    """
    done = point.state.epochs_done
    if not path.exists():
        if point.checkpoint is not None:
            raise InputFileError(
                f"{path}: missing: it witnesses the {done} completed epoch(s) of {point.checkpoint}"
            )
        return None
    lines = _read_utf8(path).split("\n")
    lines.pop()  # after the last newline: "" or a line cut short
    kept, evaluations = [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        raw = parse_json(line, where)
        record = validate(LogRecord, raw, where)
        if record.epoch <= done:
            kept.append(line + "\n")
            if record.event == "eval":
                evaluations[record.epoch] = {k: v for k, v in raw.items() if k not in ("event", "best")}
    for row in point.state.history:
        if evaluations.get(row["epoch"]) != row:
            raise InputFileError(
                f"{path}: its evaluation of epoch {row['epoch']} is missing or differs from "
                f"{point.checkpoint}/state.json: the folder mixes two runs or was edited"
            )
    return "".join(kept)


def _read_utf8(path: Path) -> str:
    try:
        return _read_bytes(path, MAX_LOG_BYTES).decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputFileError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
