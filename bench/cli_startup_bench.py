"""Start-up of `readcli --help` and of every subcommand's `--help` against `python -c "import typer"`.

Targets (issue 18, item 7): the root help's median is at most 1.5x the bare `import typer`, every
subcommand's help at most 2x. All commands run interleaved (one of each per round, the order turned
each round), so a machine shared with other jobs slows them alike; the table shows medians, ratios and
the load average before and after. Exits 1 if a target is missed.

    python bench/cli_startup_bench.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT_TARGET = 1.5
SUBCOMMAND_TARGET = 2.0


def subcommands() -> list[str]:
    """Every command name of the app, as `readcli --help` lists them."""
    from typer.main import get_group

    from readcli.cli import app

    return list(get_group(app).list_commands(None))  # type: ignore[arg-type]


def one_run(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Median seconds of each command over `runs` interleaved rounds (after one warm-up round)."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for name in names:  # warm the file cache
        one_run(commands[name])
    for round_index in range(runs):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(one_run(commands[name]))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    python = sys.executable
    commands = {
        "import typer": [python, "-c", "import typer"],
        "readcli --help": [python, "-m", "readcli", "--help"],
    }
    for name in subcommands():
        commands[f"readcli {name} --help"] = [python, "-m", "readcli", name, "--help"]
    load_before = os.getloadavg()
    medians = measure(commands, args.runs)
    load_after = os.getloadavg()
    base = medians["import typer"]
    loads = f"before {_load(load_before)}, after {_load(load_after)}"
    print(f"{os.cpu_count()} CPUs; load average (1, 5, 15 min) {loads}")
    print(f"{args.runs} interleaved runs each; medians; ratio to `python -c 'import typer'`")
    missed = 0
    for name, seconds in medians.items():
        target = (
            None if name == "import typer" else ROOT_TARGET if name == "readcli --help" else SUBCOMMAND_TARGET
        )
        verdict = (
            ""
            if target is None
            else f"  target <= {target}x: {'PASS' if seconds / base <= target else 'FAIL'}"
        )
        missed += bool(target is not None and seconds / base > target)
        print(f"{name:34s} {seconds * 1000:7.1f} ms  {seconds / base:5.2f}x{verdict}")
    print("all targets met" if not missed else f"{missed} target(s) missed")
    return 0 if not missed else 1


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
