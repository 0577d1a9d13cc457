"""`readcli evaluate` through CliRunner: the README numbers, --json layouts, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from readcli.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def qvh(shared_data: Path) -> dict[str, str]:
    folder = shared_data / "qvhighlights"
    return {
        "preds": str(folder / "sample_val_preds.jsonl"),
        "gt": str(folder / "highlight_val_release.jsonl"),
    }


def _one_error_line(result: object, *needles: str) -> None:
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr  # type: ignore[attr-defined]
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]


def test_table_shows_the_readme_numbers(qvh: dict[str, str]) -> None:
    result = runner.invoke(app, ["evaluate", "--task", "tlg", "--preds", qvh["preds"], "--gt", qvh["gt"]])
    assert result.exit_code == 0, result.output
    assert "1550 queries" in result.stdout
    for metric, value in [
        ("MR-full-R1@0.5", "53.94"),
        ("MR-full-mAP", "32.20"),
        ("HL-min-VeryGood-Hit1", "55.55"),
    ]:
        row = next(line for line in result.stdout.splitlines() if f" {metric} " in line)
        assert value in row


def test_json_is_the_official_layout(qvh: dict[str, str]) -> None:
    result = runner.invoke(
        app, ["evaluate", "--task", "tlg", "--preds", qvh["preds"], "--gt", qvh["gt"], "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report) == [
        "brief",
        "HL-min-Fair",
        "HL-min-Good",
        "HL-min-VeryGood",
        "full",
        "long",
        "middle",
        "short",
    ]
    assert report["brief"]["MR-full-mAP@0.75"] == 31.01
    assert report["brief"]["HL-min-Good-mAP"] == 58.09
    assert report["full"]["MR-R1"]["0.5"] == 53.94


def test_youtube_json_keys(shared_data: Path, tmp_path: Path) -> None:
    gt = shared_data / "youtube_highlight" / "youtube_highlight_val_release.jsonl"
    rows = [json.loads(line) for line in gt.read_text().splitlines() if line.strip()]
    preds = tmp_path / "p.jsonl"
    preds.write_text(
        "".join(json.dumps({"qid": r["qid"], "pred_saliency_scores": r["match"]}) + "\n" for r in rows)
    )
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--task",
            "tlg",
            "--dataset",
            "youtube",
            "--preds",
            str(preds),
            "--gt",
            str(gt),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report)[-2:] == ["mAP-avg", "tie_decided"] and len(report) == 8
    # `match` as scores ties every clip with its label's equals: ties that decide nothing, no warning
    assert report["tie_decided"] == [] and result.stderr == ""
    assert all(report[key] == 100.0 for key in list(report)[:-1])


def _tie_case(tmp_path: Path) -> list[str]:
    """TVSum rows: video t1's tie reaches its top 5, t2's tie lies below it."""
    label = [[5, 4]] * 3 + [[1, 1]] * 9  # both annotators: clips 0..2 above the median
    gt = [
        {"qid": "t1", "domain": "BK", "label": label},
        {"qid": "t2", "domain": "BT", "label": label},
    ]
    preds = [
        {"qid": "t1", "pred_saliency_scores": [0.9] + [0.5] * 11},  # ranks 2..12 tie: 2 positives among 11
        {"qid": "t2", "pred_saliency_scores": [0.9, 0.8, 0.7, 0.6, 0.5] + [0.1] * 7},  # tie at ranks 6..12
    ]
    for name, rows in (("gt.jsonl", gt), ("p.jsonl", preds)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ["evaluate", "--task", "tlg", "--dataset", "tvsum", "--preds", str(tmp_path / "p.jsonl"),
            "--gt", str(tmp_path / "gt.jsonl")]  # fmt: skip


def test_a_tie_that_decides_the_cut_is_one_warning_line_and_a_json_field(tmp_path: Path) -> None:
    args = _tie_case(tmp_path)
    for extra in ([], ["--json"]):
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            "warning: tied scores decide which clips enter the top 5"
        )
        assert "in 1 of 2 videos (t1)" in lines[0] and "docs/evaluation.md" in lines[0]
    report = json.loads(result.stdout)
    assert report["tie_decided"] == ["t1"] and report["top5-mAP-BT"] == 100.0
    table = runner.invoke(app, args).stdout
    assert "tie_decided" not in table and "top5-mAP-avg" in table  # the table shows metrics only


def test_vls_json_keys(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("the cat sat\n")
    (tmp_path / "r.txt").write_text("the cat sat on the mat\n")
    args = [
        "evaluate",
        "--task",
        "vls",
        "--preds",
        str(tmp_path / "p.txt"),
        "--refs",
        str(tmp_path / "r.txt"),
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"rouge1": 66.67, "rouge2": 57.14, "rougeL": 66.67}


def test_broken_jsonl_line_names_file_and_line(qvh: dict[str, str], tmp_path: Path) -> None:
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"qid": 1, "pred_relevant_windows": [[0, 2, 1]]}\n{"qid": 2, "pred_rel\n')
    result = runner.invoke(app, ["evaluate", "--task", "tlg", "--preds", str(preds), "--gt", qvh["gt"]])
    _one_error_line(result, f"{preds}:2: not valid JSON")


def test_qid_mismatch_names_the_qids(qvh: dict[str, str], tmp_path: Path) -> None:
    lines = Path(qvh["preds"]).read_text().splitlines()
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(lines[1:]) + "\n")  # drop the first query
    missing = json.loads(lines[0])["qid"]
    result = runner.invoke(app, ["evaluate", "--task", "tlg", "--preds", str(preds), "--gt", qvh["gt"]])
    _one_error_line(result, f"1 qids in the ground truth have no prediction: {missing}")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--task", "ground"], ["--task 'ground' is not a task", "tlg, vls"]),
        (["--task", "tlg"], ["--task tlg needs --gt"]),
        (
            ["--task", "tlg", "--gt", "g.jsonl", "--dataset", "charades"],
            ["--dataset 'charades'", "qvhighlights, youtube, tvsum"],
        ),
        (["--task", "vls"], ["--task vls needs --refs"]),
        (
            ["--task", "vls", "--refs", "r.txt", "--format", "xml"],
            ["--format 'xml' is not valid", "auto, plain, how2"],
        ),
        (["--task", "tlg", "--gt", "missing.jsonl"], ["file not found: missing_preds.jsonl"]),
    ],
)
def test_bad_options_are_one_line(args: list[str], needles: list[str]) -> None:
    result = runner.invoke(app, ["evaluate", "--preds", "missing_preds.jsonl", *args])
    _one_error_line(result, *needles)
