"""`readcli download`: a real HTTP server on 127.0.0.1 (Range, cuts, 404) and the hub's offline cache."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from readcli.cli import app
from readcli.errors import OfflineError
from readcli.pipelines import download as download_pipeline
from readcli.weights.catalog import URL, WeightFile
from readcli.weights.http import DownloadError, fetch, part_path

DATA = bytes(range(256)) * 1200  # 307,200 bytes, served as any .../model.ckpt or .../model_best.ckpt
runner = CliRunner()


@dataclass
class ServerState:
    cut_next: bool = False  # the next full answer stops halfway and closes the connection
    ignore_range: bool = False  # answer 200 with the whole file, as servers without Range support do
    body: bytes = DATA  # what the server sends for a file it has
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


class _Handler(BaseHTTPRequestHandler):
    state: ServerState  # set on the subclass each test makes

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self.state.requests.append((self.path, self.headers.get("Range")))
        if not self.path.endswith(("/model.ckpt", "/model_best.ckpt")):
            self.send_error(404, "Not Found")
            return
        start, data = 0, self.state.body
        if self.headers.get("Range") and not self.state.ignore_range:
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.state.cut_next:
            self.state.cut_next = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    state = ServerState()
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _entry(url: str, *, sha256: str | None = None) -> WeightFile:
    return WeightFile(
        preset="test-preset", role="backbone", kind=URL, source=url, file_name="model.ckpt", env_var=None,
        sha256=sha256 if sha256 is not None else hashlib.sha256(DATA).hexdigest(), git_blob_sha1=None,
        size=len(DATA), license="MIT",
    )  # fmt: skip


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_fetch_verifies_the_checksum_and_publishes_the_file(server: tuple[str, ServerState]) -> None:
    base, state = server
    entry = _entry(f"{base}/weights/model.ckpt")
    target = entry.location()
    assert target is not None
    fetched = fetch(entry, target)
    assert target.read_bytes() == DATA
    assert fetched.checked == "sha256" and fetched.resumed_from == 0
    assert not part_path(target).exists()
    assert state.requests == [("/weights/model.ckpt", None)]


def test_a_checksum_mismatch_is_refused_and_nothing_stays_in_the_cache(
    server: tuple[str, ServerState], _cache: Path
) -> None:
    base, _ = server
    entry = _entry(f"{base}/weights/model.ckpt", sha256="0" * 64)
    target = entry.location()
    assert target is not None
    with pytest.raises(
        DownloadError, match=f"sha256 {hashlib.sha256(DATA).hexdigest()}, the card records 0000"
    ):
        fetch(entry, target)
    assert _files(_cache) == []


def test_an_interrupted_transfer_resumes_with_a_range_request(server: tuple[str, ServerState]) -> None:
    base, state = server
    entry = _entry(f"{base}/weights/model.ckpt")
    target = entry.location()
    assert target is not None
    state.cut_next = True
    with pytest.raises(DownloadError, match=r"stopped after 153,600 of 307,200 bytes.*again to resume"):
        fetch(entry, target, retry="readcli download test-preset")
    assert not target.exists() and part_path(target).stat().st_size == len(DATA) // 2
    fetched = fetch(entry, target)
    assert fetched.resumed_from == len(DATA) // 2 and fetched.checked == "sha256"
    assert target.read_bytes() == DATA
    assert state.requests[-1] == ("/weights/model.ckpt", f"bytes={len(DATA) // 2}-")
    assert not part_path(target).exists()


def test_a_server_that_ignores_the_range_restarts_the_file(server: tuple[str, ServerState]) -> None:
    base, state = server
    entry = _entry(f"{base}/weights/model.ckpt")
    target = entry.location()
    assert target is not None
    state.cut_next = True
    with pytest.raises(DownloadError, match="again to resume"):
        fetch(entry, target)
    state.ignore_range = True
    fetched = fetch(entry, target)  # asks for the rest, gets the whole file: starts over, no duplicate bytes
    assert state.requests[-1][1] == f"bytes={len(DATA) // 2}-"
    assert target.read_bytes() == DATA and fetched.checked == "sha256"


def test_two_downloads_of_one_file_cannot_interleave(server: tuple[str, ServerState]) -> None:
    import fcntl

    base, state = server
    entry = _entry(f"{base}/weights/model.ckpt")
    target = entry.location()
    assert target is not None
    target.parent.mkdir(parents=True)
    with part_path(target).open("ab") as other:  # another process holds the part file
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(DownloadError, match="is being written by another readcli download"):
            fetch(entry, target)
    assert state.requests == [] and not target.exists()


def test_a_404_is_one_line_and_leaves_nothing(server: tuple[str, ServerState], _cache: Path) -> None:
    base, _ = server
    entry = _entry(f"{base}/weights/missing.bin")
    target = entry.location()
    assert target is not None
    with pytest.raises(DownloadError) as caught:
        fetch(entry, target)
    assert str(caught.value) == f"{base}/weights/missing.bin: HTTP 404 Not Found"
    assert _files(_cache) == []


def test_download_is_idempotent(server: tuple[str, ServerState], monkeypatch: pytest.MonkeyPatch) -> None:
    base, state = server
    entry = _entry(f"{base}/weights/model.ckpt")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(download_pipeline, "canonical", lambda name: name)
    monkeypatch.setattr(download_pipeline, "preset_files", lambda name: [entry])
    request = download_pipeline.DownloadRequest(("test-preset",))
    first = download_pipeline.run(request)
    assert [(f.action, f.checked) for f in first.files] == [("fetched", "sha256")]
    second = download_pipeline.run(request)
    assert [(f.action, f.checked) for f in second.files] == [("present", "sha256")]
    assert len(state.requests) == 1  # the second call did not touch the network


# `git hash-object` of ../shared/data/moment_detr/parity_model.ckpt, computed with git itself
PARITY_GIT_BLOB = "7d304e6694912a22deb8457f27aa868f4f06b7f2"


def test_a_downloaded_checkpoint_is_checked_by_its_git_blob_id_and_loads_as_the_preset(
    server: tuple[str, ServerState], monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    """End to end with an official-format checkpoint (random weights): the card, overridden to name this
    file's git blob id and the test server, is what `download` checks; the preset then loads it."""
    from dataclasses import replace

    from readcli.backbones.registry import load_backbone
    from readcli.weights.catalog import own_files

    base, state = server
    state.body = (shared_data / "moment_detr" / "parity_model.ckpt").read_bytes()
    card_entry = own_files("moment-detr-clip")[0]
    entry = replace(
        card_entry, source=f"{base}/moment_detr_ckpt/model_best.ckpt", git_blob_sha1=PARITY_GIT_BLOB
    )
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("READCLI_MOMENT_DETR_CLIP", raising=False)
    monkeypatch.setattr(download_pipeline, "preset_files", lambda name: [entry])
    result = download_pipeline.run(download_pipeline.DownloadRequest(("moment-detr-clip",)))
    assert [(f.action, f.checked) for f in result.files] == [("fetched", "git blob sha1")]
    model = load_backbone("moment-detr-clip")  # found where download put it, keys and config checked
    assert sum(p.numel() for p in model.parameters()) == 4_228_873


def test_cli_refuses_the_mirror_file_that_is_not_the_published_checkpoint(
    server: tuple[str, ServerState], monkeypatch: pytest.MonkeyPatch, _cache: Path
) -> None:
    base, state = server
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("READCLI_WEIGHTS_MIRROR", f"{base}/mirror/")
    monkeypatch.delenv("READCLI_MOMENT_DETR_CLIP", raising=False)
    result = runner.invoke(app, ["download", "moment-detr-clip"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(
        f"error: {base}/mirror/moment-detr-clip/model_best.ckpt: the downloaded file has "
    )
    assert "git blob sha1" in lines[-1] and "a32f31e37f885e24578a97eb0771a306725edef1" in lines[-1]
    assert _files(_cache) == []
    assert state.requests == [("/mirror/moment-detr-clip/model_best.ckpt", None)]


def test_cli_404_is_one_error_line(server: tuple[str, ServerState], monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ = server
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("READCLI_WEIGHTS_MIRROR", f"{base}/nothing-here")
    result = runner.invoke(app, ["download", "clip-vit-b-32"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [  # the progress line, then the error
        f"fetching ViT-B-32.pt (clip-vit-b-32) from {base}/nothing-here/clip-vit-b-32/ViT-B-32.pt",
        f"error: {base}/nothing-here/clip-vit-b-32/ViT-B-32.pt: HTTP 404 Not Found",
    ]


def test_offline_says_in_one_line_what_it_would_fetch() -> None:
    result = runner.invoke(app, ["download", "moment-detr-clip"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        "error: offline (HF_HUB_OFFLINE=1): readcli download would fetch model_best.ckpt"
    )
    assert (
        "https://github.com/jayleicn/moment_detr/raw/main/run_on_video/moment_detr_ckpt/model_best.ckpt"
        in (result.stderr)
    )
    assert "ViT-B-32.pt (clip-vit-b-32) from https://openaipublic.azureedge.net/clip/models/" in result.stderr


def test_an_unreachable_host_is_reported_as_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("READCLI_WEIGHTS_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(
        OfflineError, match=r"^cannot reach http://127\.0\.0\.1:\d+/clip-vit-b-32/ViT-B-32\.pt .*would fetch"
    ):
        download_pipeline.run(download_pipeline.DownloadRequest(("clip-vit-b-32",)))


def _hub_cache(root: Path, repo_id: str, files: dict[str, bytes], revision: str = "a" * 40) -> Path:
    """The hub client's cache layout: models--org--name/{refs/main, snapshots/<rev>/<file>}."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
    return snapshot


def test_hub_files_resolve_offline_from_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import hf_hub_download

    hub = tmp_path / "hub"
    snapshot = _hub_cache(hub, "facebook/bart-base", {"config.json": b"{}", "model.safetensors": b"weights"})
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    resolved = hf_hub_download(
        "facebook/bart-base", "model.safetensors", cache_dir=hub, local_files_only=True
    )
    assert Path(resolved) == snapshot / "model.safetensors"
    result = runner.invoke(app, ["download", "bart-base-vg"])  # offline: present, so nothing to fetch
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"present: model.safetensors (bart-base-vg) {snapshot / 'model.safetensors'} "
        "[no published digest to check]"
    )


def test_a_hub_file_that_differs_from_its_card_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = tmp_path / "hub"
    _hub_cache(hub, "t5-base", {"config.json": b"{}", "model.safetensors": b"not the published t5-base"})
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    result = runner.invoke(app, ["download", "t5-base-vg"])
    assert result.exit_code == 1
    assert "does not match preset t5-base-vg (sha256 " in result.stderr
    assert "a90903540cc02cbeb7ff9f823f1a80eb778c7e22426a0e620b01c77a5ec8f5b4" in result.stderr


def test_a_hub_id_missing_offline_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    result = runner.invoke(app, ["download", "t5-base-vg"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: offline (HF_HUB_OFFLINE=1): readcli download would fetch t5-base (t5-base-vg) "
        "from the Hugging Face Hub\n"
    )


def _fake_hub_client(
    monkeypatch: pytest.MonkeyPatch, hub: Path, data: bytes, differ: list[str]
) -> list[tuple[str, str | None]]:
    """Stand-ins for the two network calls of a hub download (there is no hub here): the snapshot lays
    the files out as the client would, and the hub's verification reports `differ`."""
    from readcli.weights import hub as hub_module

    calls: list[tuple[str, str | None]] = []

    def snapshot(repo_id: str, revision: str | None, *, patterns: tuple[str, ...], what: str) -> Path:
        calls.append((repo_id, revision))
        assert "*.safetensors" in patterns and "*.json" in patterns
        return _hub_cache(hub, repo_id, {"config.json": b"{}", "model.safetensors": data})

    monkeypatch.setattr(hub_module, "snapshot", snapshot)
    monkeypatch.setattr(hub_module, "hub_mismatches", lambda repo_id, revision: (2, differ))
    return calls


def test_a_hub_download_is_checked_against_the_hubs_digests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    calls = _fake_hub_client(monkeypatch, tmp_path / "hub", b"weights", differ=[])
    result = runner.invoke(app, ["download", "bart-base-vg"])
    assert result.exit_code == 0, result.output
    assert calls == [("facebook/bart-base", None)]
    assert result.stdout.startswith("fetched: model.safetensors (bart-base-vg) ")
    assert result.stdout.rstrip().endswith("[hub digests of 2 files ok]")


def test_a_hub_download_that_differs_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    _fake_hub_client(monkeypatch, tmp_path / "hub", b"weights", differ=["model.safetensors"])
    result = runner.invoke(app, ["download", "bart-base-vg"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "error: facebook/bart-base: the cached model.safetensors differ from the hub's digests; remove the "
        "cached copy (hf cache rm model/facebook/bart-base) and run readcli download bart-base-vg again"
    )
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub2"))
    _fake_hub_client(monkeypatch, tmp_path / "hub2", b"not t5-base", differ=[])
    t5 = runner.invoke(app, ["download", "t5-base-vg"])  # the card's sha256 is checked first
    assert t5.exit_code == 1
    assert "the card records a90903540cc02cbeb7ff9f823f1a80eb778c7e22426a0e620b01c77a5ec8f5b4" in t5.stderr


def test_a_hub_check_that_cannot_run_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from readcli.weights.hub import hub_mismatches

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(
        DownloadError, match=r"^facebook/bart-base: fetched into the Hugging Face cache, but its"
    ):
        hub_mismatches("facebook/bart-base", None)
