"""Flags a new user hit (issue 18, item 5): `ground --adapter` takes the bundle's backbone unless
`--backbone` is given (then the bundle's fingerprint check decides), and `finetune --epochs 0` is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY_CLIP  # noqa: E402  (tests/ is on sys.path)
from typer.testing import CliRunner

from readcli.adapters.bundle import save_bundle
from readcli.adapters.bundle_source import bundle_backbone
from readcli.adapters.inject import adapter_parameters, inject
from readcli.adapters.settings import method_settings
from readcli.backbones.moment_detr.config import tiny_moment_detr_config
from readcli.backbones.registry import build_backbone, load_backbone, load_card, save_backbone
from readcli.cli import app
from readcli.errors import BundleError
from readcli.inference.backbone_features import spec_from_card

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READCLI_CACHE", str(tmp_path / "cache"))


def _tiny_bundle(folder: Path, backbone_name: str) -> None:
    tiny = build_backbone(tiny_moment_detr_config())
    inject(tiny, method_settings("read", bottleneck=4))
    save_bundle(tiny, folder, backbone_name=backbone_name, task="tlg", extra_config={"feature_spec": {}})


def test_the_bundles_backbone_is_used_unless_one_is_given(tmp_path: Path) -> None:
    save_backbone(build_backbone(tiny_moment_detr_config()), tmp_path / "saved")
    _tiny_bundle(tmp_path / "bundle", str(tmp_path / "saved"))
    assert bundle_backbone(tmp_path / "bundle", None, "moment-detr-clip") == str(tmp_path / "saved")
    assert bundle_backbone(tmp_path / "bundle", "other.ckpt", "moment-detr-clip") == "other.ckpt"
    assert bundle_backbone(None, None, "moment-detr-clip") == "moment-detr-clip"
    _tiny_bundle(tmp_path / "lost", "runs/elsewhere/backbone.ckpt")
    with pytest.raises(
        BundleError, match=r"trained on backbone 'runs/elsewhere/backbone.ckpt'.*--backbone PATH"
    ):
        bundle_backbone(tmp_path / "lost", None, "moment-detr-clip")


def test_ground_with_only_adapter_loads_the_bundles_backbone_and_vouches_for_it(
    shared_data: Path, tiny_clip: Path, tmp_path: Path
) -> None:
    parity = shared_data / "moment_detr" / "parity_model.ckpt"
    model = load_backbone(parity)
    inject(model, method_settings("read", bottleneck=4))
    with torch.no_grad():
        for parameter in adapter_parameters(model).values():
            parameter.normal_(0, 0.2)
    spec = spec_from_card(load_card("moment-detr-clip")).to_json()
    save_bundle(
        model, tmp_path / "b", backbone_name=str(parity), task="tlg", extra_config={"feature_spec": spec}
    )
    video = shared_data / "videos" / "book.mp4"
    args = ["ground", str(video), "a book", "--adapter", str(tmp_path / "b"), "--clip-model", TINY_CLIP,
            "--clip-weights", str(tiny_clip), "--device", "cpu", "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output  # the default preset (absent here) was not loaded
    assert '"state": "adapter"' in result.stdout  # the backbone: its adapter's fingerprint matched
    # --backbone given: the bundle's fingerprint check refuses another backbone in one line
    save_backbone(build_backbone(tiny_moment_detr_config()), tmp_path / "tiny")
    other = runner.invoke(app, [*args, "--backbone", str(tmp_path / "tiny")])
    assert other.exit_code == 1
    errors = [line for line in other.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "made for another moment_detr" in errors[0]


def test_finetune_epochs_0_is_refused_not_turned_into_10(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["finetune", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--epochs", "0"]
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: --epochs 0 is invalid: use an integer >= 1"
    assert not (tmp_path / "r").exists()


def test_backbone_preset_lists_name_backbones_only() -> None:
    from readcli.backbones.presets import backbone_preset_names, load_card

    assert "clip-vit-b-32" not in backbone_preset_names() and "moment-detr-clip" in backbone_preset_names()
    with pytest.raises(Exception, match="choices: moment-detr-clip, umt, umt-s, umt-s-scratch$"):
        load_card("nope")
    result = runner.invoke(app, ["ground", __file__, "q", "--backbone", "nope", "--device", "cpu"])
    (line,) = result.stderr.strip().splitlines()
    assert "neither a backbone preset (" in line and "clip-vit-b-32" not in line


def test_an_error_off_a_terminal_is_one_line_with_nothing_on_stdout(tmp_path: Path) -> None:
    result = runner.invoke(app, ["finetune", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and result.stdout == ""  # no blank line left by a progress bar
    assert result.stderr == f"error: dataset directory not found: {tmp_path / 'none'}\n"


def test_the_lazy_consoles_work_as_rich_consoles_in_a_live_display() -> None:
    from rich.progress import Progress

    from readcli.cli.common import err_console

    with err_console:  # rich's Live does this on stop
        pass
    with Progress(console=err_console, transient=True) as bar:  # not disabled: exercises Live
        bar.update(bar.add_task("x", total=2), completed=2)
