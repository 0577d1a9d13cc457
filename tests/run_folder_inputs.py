"""A small trained finetune run folder, and a digest of a folder, for the resume tests
(tests/test_resume.py, tests/test_fuzz_run_folder.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from reliability_inputs import grounding_dir, tiny_backbone

from readcli.pipelines.finetune import run
from readcli.pipelines.finetune_request import GroundingFinetuneRequest
from readcli.training.loop import TrainSettings

EPOCHS = 2  # the base run's epochs (3 steps each: 12 rows, batch 4)


def trained_run(root: Path, shared_data: Path) -> dict[str, Path]:
    """A finished 2-epoch run of the tiny Moment-DETR on 12 real QVHighlights rows (about a second)."""
    data = grounding_dir(root / "data", shared_data)
    backbone = tiny_backbone(root / "backbone")
    out = root / "run"
    settings = TrainSettings(epochs=EPOCHS, batch_size=4, lr=1e-3, seed=3, device="cpu")
    run(GroundingFinetuneRequest(data=str(data), out=str(out), backbone=str(backbone), train=settings))
    return {"data": data, "backbone": backbone, "run": out}


def digest(folder: Path) -> dict[str, str]:
    """Every entry under `folder`: a file's sha256, a folder, or a link's target (what 'unchanged' means)."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            key = str(path.relative_to(folder))
            if path.is_symlink():
                found[key] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                found[key] = "dir"
            else:
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found
