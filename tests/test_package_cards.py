"""Preset cards ship with the package: a wheel built from the repository carries every card of the
top-level `models/` as `readcli/models/`, and readcli installed from it (not the editable checkout)
loads every preset card through importlib.resources and runs `readcli ground --help`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from readcli.backbones import presets
from readcli.backbones.presets import MODELS_DIR, PRESETS, cards_dir, load_card, read_card
from readcli.errors import InputFileError

REPO = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "models", "readcli")
VG_CARDS = ("bart-base-vg.json", "t5-base-vg.json")  # vision_guided_io.VG_PRESETS (no transformers here)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel .` of a copy of the repository (offline, no build isolation, no build/ left behind)."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        item = REPO / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(item, source / name)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
               "-q", "-w", str(out), str(source)]  # fmt: skip
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, (
        f"pip wheel failed (needs setuptools>=70.1, the [test] extra):\n{done.stderr}"
    )
    (built,) = out.glob("readcli-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked as an install location (a pure-Python wheel installs by unpacking)."""
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def test_every_card_of_models_is_in_the_wheel(wheel: Path) -> None:
    cards = sorted(p.name for p in MODELS_DIR.glob("*.json"))
    assert set(PRESETS.values()) | set(VG_CARDS) <= set(cards)  # every preset's card is a file there
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "readcli = readcli.cli:main" in archive.read(entry_points).decode()
        assert {f"readcli/models/{card}" for card in cards} <= names
        for card in cards:  # the packaged card is the edited one, byte for byte
            assert archive.read(f"readcli/models/{card}") == (MODELS_DIR / card).read_bytes()
    assert "readcli/py.typed" in names and "readcli/backbones/presets.py" in names


def test_the_installed_wheel_loads_every_card_and_runs_the_cli(installed: Path, tmp_path: Path) -> None:
    code = f"""
from pathlib import Path
import readcli
from readcli.backbones.presets import cards_dir, load_card, preset_names
from readcli.backbones.vision_guided.checkpoint_io import VG_PRESETS, load_vg_card
site = Path({str(installed)!r}).resolve()
assert Path(readcli.__file__).resolve().is_relative_to(site), readcli.__file__  # not the checkout
assert Path(str(cards_dir())).resolve() == site / "readcli" / "models", cards_dir()
names = [load_card(n).name for n in preset_names()] + [load_vg_card(n).name for n in VG_PRESETS]
print(" ".join(names))
"""
    env = {**os.environ, "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) >= {
        "moment-detr-clip",
        "clip-vit-b-32",
        "umt-s",
        "bart-base-vg",
        "t5-base-vg",
    }
    help_command = [sys.executable, "-m", "readcli", "ground", "--help"]
    cli = subprocess.run(help_command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert cli.returncode == 0 and "Usage" in cli.stdout, cli.stderr


def test_cards_resolve_through_importlib_resources(monkeypatch: pytest.MonkeyPatch, wheel: Path) -> None:
    # A source checkout (this test run) has no readcli/models/: the top-level models/ is used.
    assert Path(str(cards_dir())) == MODELS_DIR
    # A package served from an archive (no file-system path): the loader's Traversable is read.
    monkeypatch.setattr(presets.resources, "files", lambda _: zipfile.Path(wheel, "readcli/"))
    assert isinstance(cards_dir(), zipfile.Path)
    card = load_card("umt")
    assert card.name == "umt-s" and card.raw == read_card("umt-s.json")[0]
    assert read_card("umt-s.json")[1].endswith("readcli/models/umt-s.json")
    with pytest.raises(InputFileError, match="preset card not found: .*readcli/models/none.json"):
        read_card("none.json")
