"""The finetune request split by task, its options defined once (readcli.options), and the CLI's
refusal of an option of the other task; nothing here trains (each test well under a second)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from readcli.cli import app
from readcli.errors import InvalidValueError
from readcli.options import training
from readcli.options.alignment import MASS, PVLA_WEIGHT, TAU
from readcli.options.finetune import TASK_DEFAULTS, TASK_ONLY
from readcli.pipelines.finetune_request import (
    REQUESTS,
    GroundingFinetuneRequest,
    SummarizationFinetuneRequest,
    apply_changes,
    new_request,
)
from readcli.training.loop import TrainSettings

runner = CliRunner()


def test_a_field_exists_only_in_the_task_that_reads_it() -> None:
    grounding = {f.name for f in fields(GroundingFinetuneRequest)}
    summarization = {f.name for f in fields(SummarizationFinetuneRequest)}
    for name, (task, _) in TASK_ONLY.items():
        assert name in {f.name for f in fields(REQUESTS[task])}
        assert name not in (summarization if task == "tlg" else grounding)


def test_each_task_takes_its_own_defaults() -> None:
    for task, defaults in TASK_DEFAULTS.items():
        request = new_request(task, "d", "o", {})
        assert request.backbone == defaults.backbone and request.train.select_metric == defaults.select_metric
        assert (request.tau, request.mass, request.pvla_weight) == (
            TAU.default,
            MASS.default,
            PVLA_WEIGHT.default,
        )


def test_the_loop_settings_default_to_the_option_specs() -> None:
    """TrainSettings (readcli.training.loop) holds the loop's options in a run: same defaults."""
    settings = TrainSettings()
    for option in (
        training.EPOCHS,
        training.LR,
        training.BATCH_SIZE,
        training.SEED,
        training.DEVICE,
        training.AMP,
    ):
        assert getattr(settings, option.field) == option.default, option.flag


@pytest.mark.parametrize(
    ("task", "options", "message"),
    [
        ("tlg", {"beams": 3}, "--beams does not apply to --task tlg"),
        ("tlg", {"fusion_options": ["cross_attn_type=5"]}, "--fusion-option does not apply to --task tlg"),
        ("vls", {"domain": "all"}, "--domain does not apply to --task vls"),
        ("vls", {"dataset": "youtube"}, "--dataset does not apply to --task vls"),
        ("tlg", {"tau": 0.0}, "--tau 0.0 is invalid: use a finite temperature > 0"),
        ("tlg", {"mass": 1.5}, r"--mass 1.5 is out of range: use a fraction in \(0, 1\]"),
        ("tlg", {"mass_mode": "best"}, "--mass-mode 'best' is unknown: choose one of fixed, sweep"),
        ("tlg", {"pvla_weight": -1.0}, "--pvla-weight -1.0 is invalid"),
        ("tlg", {"train_samples": 0}, "--train-samples 0 is invalid: use an integer >= 1"),
        ("xyz", {}, "--task 'xyz' is not available: choose one of tlg, vls"),
    ],
)
def test_a_request_refuses_what_does_not_apply_or_is_out_of_range(
    task: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidValueError, match=message):
        new_request(task, "d", "o", options)


def test_on_resume_the_other_task_and_out_are_refused(tmp_path: Path) -> None:
    recorded = GroundingFinetuneRequest(data="d", out=str(tmp_path))
    source = tmp_path / "run.json"
    with pytest.raises(InvalidValueError, match="--beams does not apply to --task tlg"):
        apply_changes(recorded, {"beams": 3}, out=tmp_path, source=source)
    with pytest.raises(InvalidValueError, match="--task 'vls' differs from this run's 'tlg'"):
        apply_changes(recorded, {"task": "vls"}, out=tmp_path, source=source)
    with pytest.raises(InvalidValueError, match="differs from --resume"):
        apply_changes(recorded, {"out": "/elsewhere"}, out=tmp_path, source=source)
    more = apply_changes(recorded, {"epochs": 20, "tau": 0.1}, out=tmp_path, source=source)
    assert more.train.epochs == 20 and more.tau == 0.1  # the pipeline then refuses the tau change


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--beams", "3"], "error: --beams does not apply to --task tlg: it is an option of --task vls"),
        (["--task", "vls", "--domain", "all"], "error: --domain does not apply to --task vls"),
        (["--video-dim", "12"], "error: --video-dim does not apply to --task tlg"),
    ],
)
def test_the_cli_refuses_an_option_of_the_other_task_in_one_line(
    args: list[str], line: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["finetune", "--data", str(tmp_path), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), lines
    assert not (tmp_path / "o").exists()


def test_the_cli_declares_its_options_from_the_specs() -> None:
    """--help shows each spec's help text and the default it has in the request."""
    result = runner.invoke(app, ["finetune", "--help"], terminal_width=400)
    text = " ".join(result.output.split())
    for option in (TAU, MASS, PVLA_WEIGHT, training.LR, training.EPOCHS, training.BATCH_SIZE):
        assert f"{option.flag} " in text and option.help_text in text, option.flag
        assert f"[default: {option.default}]" in text, option.flag
