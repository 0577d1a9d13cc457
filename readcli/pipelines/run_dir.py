"""A finetune run folder's life: created only for a run that can start, removed again if that run
fails before its first checkpoint, and on resume only continued with the settings it was started with.

docs/training.md ("Resume guarantees") and docs/reliability.md ("Resume and run folders").
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from readcli.backbones.presets import card_name
from readcli.backbones.vision_guided.checkpoint_io import VG_PRESETS
from readcli.errors import InvalidValueError, OutputFileError
from readcli.fileio import atomic_write_json, write_failure
from readcli.training.train_checkpoint import CHECKPOINTS, LATEST

RUN_FILE = "run.json"
# every name a finetune run writes in its folder
RUN_OUTPUTS = (
    RUN_FILE,
    CHECKPOINTS,
    "best",
    "best_val_preds.jsonl",
    "best_val_summaries.txt",
    "metrics.json",
    "train_log.jsonl",
)
# options a resume may change: they are applied and recorded in run.json; every other one must agree
CHANGEABLE_ON_RESUME = ("train.epochs", "train.device", "out")

R = TypeVar("R")


def check_fresh_out(out: Path) -> None:
    """A new run never writes into a folder that holds another run's files."""
    if (out / RUN_FILE).exists():
        raise InvalidValueError(
            f"--out {out} already holds a run: continue it with --resume {out}, or choose another --out"
        )
    for name in RUN_OUTPUTS:
        path = out / name
        if path.exists() and not (name == CHECKPOINTS and path.is_dir() and not any(path.iterdir())):
            raise InvalidValueError(
                f"--out {out} already holds {name} (a run's file): a new run would overwrite it; "
                "choose another --out"
            )


def start_run_dir(out: Path, request: dict[str, Any]) -> None:
    """Create the folder and its checkpoints/ (so a folder without it is recognisably damaged), then
    record the request."""
    try:
        (out / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    except PermissionError:  # e.g. --out under a folder the user cannot write
        blocked = Path(os.path.abspath(out))
        while not blocked.exists():
            blocked = blocked.parent
        raise OutputFileError(
            f"cannot write {out / RUN_FILE}: {blocked} is not writable; choose a writable folder"
        ) from None
    except OSError as err:
        raise write_failure(out / RUN_FILE, err) or err from None
    atomic_write_json(out / RUN_FILE, request)


@contextmanager
def removed_on_failure(
    out: Path,
    *,
    enabled: bool,
    names: tuple[str, ...] = RUN_OUTPUTS,
    keep: Callable[[], bool] | None = None,
) -> Iterator[None]:
    """If the body fails before a first checkpoint exists (`keep()`, default: OUT's LATEST exists),
    remove what it created: the folder (and the parents it needed) when it did not exist, else only
    the `names` that were not there. A folder or file the user had is never removed; a run with a
    checkpoint is kept whole for --resume."""
    created_root = _first_missing(out)
    existed = {name for name in names if (out / name).exists() or (out / name).is_symlink()}
    try:
        yield
    except BaseException:
        resumable = keep() if keep is not None else (out / CHECKPOINTS / LATEST).exists()
        if enabled and not resumable:
            if created_root is not None:
                shutil.rmtree(created_root, ignore_errors=True)
            else:
                for name in set(names) - existed:
                    _remove(out / name)
                if CHECKPOINTS in existed and (out / CHECKPOINTS).is_dir():  # empty at the start
                    for entry in (out / CHECKPOINTS).iterdir():  # (check_fresh_out): a staging folder
                        _remove(entry)
        raise


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of `path` that does not exist yet (None: `path` exists)."""
    path = Path(os.path.abspath(path))
    missing = None
    while not path.exists() and not path.is_symlink():
        missing, path = path, path.parent
    return missing


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def with_absolute_paths(request: R) -> R:
    """`data`, `out` and a `backbone` that names a file or folder (not a preset) as absolute paths, so
    `--resume RUN` works from any directory."""
    fields: Any = request
    backbone = fields.backbone
    if card_name(backbone) is None and backbone not in VG_PRESETS and Path(backbone).expanduser().exists():
        backbone = os.path.abspath(Path(backbone).expanduser())
    return replace(
        fields, data=os.path.abspath(fields.data), out=os.path.abspath(fields.out), backbone=backbone
    )


def check_resume_settings(requested: dict[str, Any], recorded: dict[str, Any], source: Path) -> None:
    """Refuse, naming the option, a resume asked with a setting other than the run's recorded one."""
    for key in sorted(set(_flat(requested)) | set(_flat(recorded))):
        if key in CHANGEABLE_ON_RESUME:
            continue
        now, then = _flat(requested).get(key), _flat(recorded).get(key)
        if now != then:
            flag = "--" + key.rsplit(".", 1)[-1].replace("_", "-")
            raise InvalidValueError(
                f"{flag} {now!r} differs from this run's {then!r} ({source}): a resumed run keeps the "
                f"settings it began with (only --epochs and --device may change); drop {flag}, or start "
                "a new run with another --out"
            )


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
