"""Start-up of the `readcli` script (readcli.cli.main): what `--help` imports, and that the script's
lazily built commands behave as the app's. Timings are in bench/cli_startup_bench.py (a test cannot
time reliably on a shared machine); these tests pin the imports the timings depend on.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from readcli.cli import app
from readcli.cli.app import _command_infos, entry

HEAVY = ("torch", "numpy", "transformers", "open_clip", "decord", "matplotlib")
# what typer's rich help and its coercion pull in: each costs a large share of `--help`
SLOW = ("pydantic", "rich", "markdown_it", "pygments")

PROBE = """
import json, sys
watched = json.loads(sys.argv[2])
sys.argv = ["readcli", *json.loads(sys.argv[1])]
from readcli.cli import main
try:
    main()
except SystemExit as stop:
    code = stop.code
loaded = [m for m in watched if m in sys.modules]
print(json.dumps({"code": code, "loaded": loaded}))
"""


def _script(args: list[str]) -> dict[str, object]:
    """Run the `readcli` entry point with `args` in a fresh interpreter; the modules it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps([*HEAVY, *SLOW])],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_root_help_loads_neither_heavy_nor_slow_modules() -> None:
    found = _script(["--help"])
    assert found == {"code": 0, "loaded": []}


@pytest.mark.parametrize("command", sorted(_command_infos()))
def test_every_subcommand_help_loads_no_torch_numpy_transformers_pydantic_or_rich(command: str) -> None:
    found = _script([command, "--help"])
    assert found == {"code": 0, "loaded": []}, command


def test_the_script_lists_every_command_of_the_app_with_its_first_line() -> None:
    eager = CliRunner().invoke(app, ["--help"]).output
    lazy = CliRunner().invoke(entry, ["--help"]).output
    assert lazy == eager  # same commands, order and short help as the fully built app
    for name in _command_infos():
        assert f"\n  {name} " in lazy


def test_the_script_runs_a_command_and_reports_usage_errors_in_one_line() -> None:
    version = CliRunner().invoke(entry, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("readcli ")
    missing = CliRunner().invoke(entry, ["ground"])
    assert missing.exit_code == 2
    assert missing.stderr.strip().splitlines() == [
        "error: Missing argument 'VIDEO'. (see 'readcli ground --help')"
    ]
    unknown = CliRunner().invoke(entry, ["grund"])
    assert unknown.exit_code == 2 and "No such command 'grund'" in unknown.stderr


def test_help_shows_types_capital_arguments_and_marks_required() -> None:
    text = CliRunner().invoke(entry, ["ground", "--help"], terminal_width=100).output
    assert "[OPTIONS] VIDEO QUERY" in text  # not typer's {video} {query}
    assert "--top-k <int>" in text and "--nms-iou <float>" in text
    assert "[required]" in text
    assert "<bool>" not in text  # a flag takes no value
