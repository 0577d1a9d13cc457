"""`readcli --help` start-up time against a bare Typer app's `--help`, in the same run.

Target (issue 2): readcli's median is at most 1.5x the bare app's median. Prints both medians and the
ratio; exits 1 if the target is missed.

    python bench/cli_startup_bench.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_APP = '''
import typer
app = typer.Typer(help="A bare Typer app with one command.")

@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""

@app.command()
def bye() -> None:
    """Say bye."""

app()
'''


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare_app.py"
        bare.write_text(BARE_APP)
        # warm the file cache for both before timing
        median_seconds([sys.executable, str(bare), "--help"], 2)
        median_seconds([sys.executable, "-m", "readcli", "--help"], 2)
        bare_s = median_seconds([sys.executable, str(bare), "--help"], args.runs)
        readcli_s = median_seconds([sys.executable, "-m", "readcli", "--help"], args.runs)
    ratio = readcli_s / bare_s
    print(f"bare Typer --help   median {bare_s * 1000:7.1f} ms over {args.runs} runs")
    print(f"readcli --help      median {readcli_s * 1000:7.1f} ms over {args.runs} runs")
    print(f"ratio {ratio:.2f}x (target <= 1.5x): {'PASS' if ratio <= 1.5 else 'FAIL'}")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
