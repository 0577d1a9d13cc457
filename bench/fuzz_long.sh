#!/usr/bin/env bash
# The long fuzz run: the Hypothesis property tests of tests/test_fuzz_readers.py and
# tests/test_fuzz_cli.py under the "long" profile (random seeds, FUZZ_EXAMPLES examples per test and
# round), round after round until MINUTES have passed. Every round's pytest output and Hypothesis
# statistics go to LOG; at the end, the generated cases per test (summed over the finished rounds)
# and every failure are summarised from it. A round cut by the deadline is not counted.
#
#   bench/fuzz_long.sh [MINUTES=60] [LOG=bench/fuzz_long.log]
#   PYTHON=/path/to/venv/bin/python FUZZ_EXAMPLES=300 nice -n 10 bench/fuzz_long.sh 60
#
# docs/reliability.md ("The fuzzer") says what each test covers and what the last long run found.
set -u
cd "$(dirname "$0")/.."
minutes=${1:-60}
log=${2:-bench/fuzz_long.log}
python=${PYTHON:-python}
export HYPOTHESIS_PROFILE=long FUZZ_EXAMPLES=${FUZZ_EXAMPLES:-300} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export PYTHONPATH=${PYTHONPATH:-$PWD}
deadline=$(( $(date +%s) + minutes * 60 ))
: > "$log"
round=0
while [ "$(date +%s)" -lt "$deadline" ]; do
    round=$((round + 1))
    left=$(( deadline - $(date +%s) ))
    echo "=== round $round ($(date -u +%H:%M:%S) UTC, ${left} s left)" >> "$log"
    timeout "$left" "$python" -m pytest -q -p no:cacheprovider --hypothesis-show-statistics \
        tests/test_fuzz_readers.py tests/test_fuzz_cli.py >> "$log" 2>&1
    echo "=== round $round exit $?" >> "$log"
done
"$python" - "$log" <<'PY'
import re, sys
from collections import defaultdict

text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
rounds = re.split(r"^=== round \d+ \(", text, flags=re.M)[1:]
passing, failing = defaultdict(int), defaultdict(int)
finished = 0
for chunk in rounds:
    if re.search(r"=== round \d+ exit 124", chunk):
        continue  # cut by the deadline: its statistics are incomplete
    finished += 1
    test = None
    for line in chunk.splitlines():
        head = re.match(r"^(tests/\S+::\S+):$", line.strip())
        if head:
            test = head.group(1)
        counts = re.search(r"(\d+) passing examples?, (\d+) failing examples?", line)
        if counts and test:
            passing[test] += int(counts.group(1))
            failing[test] += int(counts.group(2))
print(f"finished rounds: {finished} of {len(rounds)}")
for test in sorted(passing):
    print(f"{passing[test] + failing[test]:>8} cases  {failing[test]:>4} failing  {test}")
print(f"{sum(passing.values()) + sum(failing.values()):>8} cases in all")
for name in sorted(set(re.findall(r"^FAILED (\S+)", text, flags=re.M))):
    print("FAILED", name)
PY
