"""Where `--adapter` comes from: a local bundle folder, or a Hugging Face Hub repository id.

`--adapter runs/x/best` is a folder. `--adapter org/name` or `org/name@revision` (a branch, tag or
commit) is a bundle pushed to the Hub (`hf upload org/name runs/x/best`, docs/adapters.md), fetched
through huggingface_hub into its cache (only the two bundle files) and read from there; offline
(`HF_HUB_OFFLINE=1`) the cached copy is used, and a missing one is one error naming the id. A local
path that exists always wins over a hub id spelt the same way. `ground`, `summarize` (and any
command taking a bundle) resolve `--adapter` here, once per run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import overload

from readcli.errors import BundleError

# org/name, optionally @revision: the hub's id characters (letters, digits, - _ .), one slash
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+(@[A-Za-z0-9_./-]+)?")


@overload
def resolve_adapter(spec: None) -> None: ...
@overload
def resolve_adapter(spec: str) -> str: ...
@overload
def resolve_adapter(spec: Path) -> Path: ...
def resolve_adapter(spec: str | Path | None) -> str | Path | None:
    """The local folder of `--adapter` (a folder as given, or a hub id's cached snapshot); same type back."""
    if spec is None:
        return None
    folder = bundle_folder(os.fspath(spec))
    return folder if isinstance(spec, Path) else str(folder)


def bundle_folder(spec: str) -> Path:
    local = Path(spec).expanduser()
    if local.exists():  # a folder wins; loading says what is wrong with it, if anything
        return local
    if not _HUB_ID.fullmatch(spec):
        raise BundleError(
            f"--adapter {spec}: no such folder, and not a Hugging Face Hub id (ORG/NAME or ORG/NAME@REVISION)"
        )
    # lazy: the bundle module imports torch and the hub client huggingface_hub; only a hub id needs them
    from readcli.adapters.bundle import CONFIG_FILE, WEIGHTS_FILE
    from readcli.weights.hub import snapshot, split_revision

    repo_id, revision = split_revision(spec)
    return snapshot(
        repo_id,
        revision,
        patterns=(CONFIG_FILE, WEIGHTS_FILE),
        what=f"--adapter {spec} (no such folder; a Hub id)",
    )


def bundle_backbone(adapter: str | Path | None, given: str | None, default: str) -> str:
    """The backbone a run loads: `given` (--backbone; a bundle's fingerprint check then says whether
    it fits), else the one the bundle at `adapter` (a resolved folder) was trained on, else `default`."""
    if given is not None:
        return given
    if adapter is None:
        return default
    # lazy: these import torch; a run that names its backbone never reads the bundle's config here
    from readcli.adapters.bundle import read_bundle_config
    from readcli.backbones.presets import card_name
    from readcli.backbones.vision_guided.checkpoint_io import VG_PRESETS

    name = read_bundle_config(adapter).backbone_name
    if card_name(name) is None and name not in VG_PRESETS and not Path(name).expanduser().exists():
        raise BundleError(
            f"--adapter {adapter} was trained on backbone {name!r}, which is neither a preset nor a file or "
            "folder here: pass --backbone PATH to that checkpoint (the bundle checks its fingerprint)"
        )
    return name
