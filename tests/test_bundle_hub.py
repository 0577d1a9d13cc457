"""`--adapter ORG/NAME[@REV]`: bundles from a pre-populated Hugging Face cache, offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from test_adapters_hosts import CASES, train_steps

from readcli.adapters.bundle import CONFIG_FILE, WEIGHTS_FILE, load_bundle, save_bundle
from readcli.adapters.bundle_source import resolve_adapter
from readcli.adapters.inject import inject
from readcli.adapters.settings import method_settings
from readcli.errors import BundleError, OfflineError

MAIN = "1" * 40  # commit of refs/main in the fake cache
OLDER = "2" * 40  # an older commit, reachable as @OLDER only


@pytest.fixture(autouse=True)
def _private_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "hub"


def _publish(bundle: Path, hub: Path, repo_id: str, revision: str, *, main: bool) -> Path:
    """Lay a bundle out as huggingface_hub caches a repository: snapshots/<rev>/..., refs/main."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copyfile(bundle / name, snapshot / name)
    if main:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(revision)
    return snapshot


def _bundle(folder: Path, seed: int) -> torch.nn.Module:
    case = CASES["host"]
    model = case.build(0)
    inject(model, method_settings("read", bottleneck=4))
    torch.manual_seed(seed)
    train_steps(case, model)
    save_bundle(model, folder, backbone_name="tiny-host", task="test")
    return model


def test_a_hub_id_resolves_to_the_cached_snapshot_and_loads(tmp_path: Path, _private_caches: Path) -> None:
    trained = _bundle(tmp_path / "made", seed=1)
    snapshot = _publish(tmp_path / "made", _private_caches, "lab/read-tiny", MAIN, main=True)
    assert resolve_adapter("lab/read-tiny") == str(snapshot)
    assert resolve_adapter(Path("lab/read-tiny")) == snapshot  # the CLI's Path-typed option
    fresh = CASES["host"].build(0)
    load_bundle(fresh, resolve_adapter(Path("lab/read-tiny")), task="test")
    batch = CASES["host"].inputs()
    with torch.no_grad():
        assert torch.equal(CASES["host"].run(trained, batch), CASES["host"].run(fresh, batch))


def test_a_revision_picks_that_snapshot(tmp_path: Path, _private_caches: Path) -> None:
    _bundle(tmp_path / "new", seed=1)
    _bundle(tmp_path / "old", seed=2)
    _publish(tmp_path / "new", _private_caches, "lab/read-tiny", MAIN, main=True)
    older = _publish(tmp_path / "old", _private_caches, "lab/read-tiny", OLDER, main=False)
    assert resolve_adapter(f"lab/read-tiny@{OLDER}") == str(older)
    assert (Path(resolve_adapter(f"lab/read-tiny@{OLDER}")) / CONFIG_FILE).read_bytes() == (
        tmp_path / "old" / CONFIG_FILE
    ).read_bytes()


def test_a_local_folder_wins_over_a_hub_id_spelt_the_same(tmp_path: Path, _private_caches: Path) -> None:
    _bundle(tmp_path / "made", seed=1)
    _publish(tmp_path / "made", _private_caches, "lab/read-tiny", MAIN, main=True)
    local = tmp_path / "lab" / "read-tiny"
    local.mkdir(parents=True)
    assert resolve_adapter("lab/read-tiny") == "lab/read-tiny"  # relative to the working folder
    assert resolve_adapter(None) is None


def test_a_hub_id_missing_offline_is_one_line_naming_it() -> None:
    with pytest.raises(OfflineError) as caught:
        resolve_adapter("lab/not-cached@v2")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        "--adapter lab/not-cached@v2 (no such folder; a Hub id): lab/not-cached at revision v2 "
    )
    assert "HF_HUB_OFFLINE=1 is set" in message


def test_neither_a_folder_nor_a_hub_id_is_refused() -> None:
    with pytest.raises(
        BundleError, match=r"^--adapter runs/a/best: no such folder, and not a Hugging Face Hub id"
    ):
        resolve_adapter("runs/a/best")
