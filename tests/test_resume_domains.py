"""`finetune --domain all` folders: a resume or a rerun checks every domain and its recorded request first.

A refused resume leaves the whole OUT (domains_request.json, domains.json, every domain's run folder)
byte-for-byte unchanged; a fresh `--domain all` that fails before any domain's first checkpoint leaves
no OUT behind. docs/reliability.md, "Resume and run folders".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from run_folder_inputs import digest
from test_highlight_task import VIDEO_DIM, youtube_data
from typer.testing import CliRunner

from readcli.backbones.registry import build_backbone, save_backbone
from readcli.backbones.umt.config import tiny_umt_config
from readcli.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def domains_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("domains")
    data = youtube_data(root / "data")
    backbone = save_backbone(build_backbone(tiny_umt_config(v_feat_dim=VIDEO_DIM)), root / "umt")
    out = root / "runs"
    result = runner.invoke(app, _args(data, backbone, out))
    assert result.exit_code == 0, result.output
    return {"data": data, "backbone": backbone, "out": out}


def _args(data: Path, backbone: Path, out: Path) -> list[str]:
    return ["finetune", "--task", "tlg", "--dataset", "youtube", "--domain", "all", "--data", str(data),
            "--backbone", str(backbone), "--epochs", "1", "--batch-size", "2", "--device", "cpu",
            "--out", str(out)]  # fmt: skip


def _one_line(result: object) -> str:
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    (line,) = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert line.startswith("error: ") and "Traceback" not in result.output  # type: ignore[attr-defined]
    return str(line)


def test_a_resume_with_another_setting_is_refused_and_changes_nothing(domains_run: dict[str, Path]) -> None:
    out = domains_run["out"]
    before = digest(out)
    line = _one_line(runner.invoke(app, ["finetune", "--resume", str(out), "--epochs", "2", "--lr", "0.5"]))
    assert "--lr 0.5 differs" in line and "domains_request.json" in line
    assert digest(out) == before


def test_a_damaged_domain_refuses_the_resume_before_any_domain_trains(
    domains_run: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "runs"
    shutil.copytree(domains_run["out"], out)
    state = out / "skiing" / "checkpoints" / "epoch-0001" / "state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "epochs_done": -5}))
    before = digest(out)
    line = _one_line(runner.invoke(app, ["finetune", "--resume", str(out), "--epochs", "2"]))
    assert "skiing" in line and "epochs_done" in line
    assert digest(out) == before  # the dog domain did not train its second epoch either


def test_a_fresh_domain_run_that_fails_at_once_leaves_no_out(
    domains_run: dict[str, Path], tmp_path: Path
) -> None:
    nan = build_backbone(tiny_umt_config(v_feat_dim=VIDEO_DIM))
    for parameter in nan.parameters():
        parameter.data.fill_(float("nan"))
    backbone = save_backbone(nan, tmp_path / "nan-umt")
    out = tmp_path / "new" / "runs"
    line = _one_line(runner.invoke(app, _args(domains_run["data"], backbone, out)))
    assert "NaN or inf weights" in line
    assert not (tmp_path / "new").exists()


def test_a_finished_domain_with_a_damaged_metrics_file_is_refused_not_reused(
    domains_run: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "runs"
    shutil.copytree(domains_run["out"], out)
    (out / "dog" / "metrics.json").write_text(json.dumps({"history": [1], "best": {}}))
    before = digest(out)
    line = _one_line(runner.invoke(app, ["finetune", "--resume", str(out)]))
    assert "dog" in line and "metrics.json" in line
    assert digest(out) == before
