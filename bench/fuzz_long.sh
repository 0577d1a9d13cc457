#!/usr/bin/env bash
# The long fuzz run: the Hypothesis property tests of tests/test_fuzz_readers.py and
# tests/test_fuzz_cli.py under the "long" profile (random seeds; READER_EXAMPLES examples per reader
# test and CLI_EXAMPLES per CLI test in each round), round after round until MINUTES have passed.
# Every round's pytest output and Hypothesis statistics go to LOG, and every case run (reader call or
# CLI run, with its outcome) to LOG.cases; at the end the cases per test (those of a round cut by the
# deadline included) and every failure are summarised.
#
#   bench/fuzz_long.sh [MINUTES=60] [LOG=bench/fuzz_long.log]
#   PYTHON=/path/to/venv/bin/python READER_EXAMPLES=1000 CLI_EXAMPLES=150 nice -n 10 bench/fuzz_long.sh 60
#
# docs/reliability.md ("The fuzzer") says what each test covers and what the last long run found.
set -u
cd "$(dirname "$0")/.."
minutes=${1:-60}
log=${2:-bench/fuzz_long.log}
python=${PYTHON:-python}
export HYPOTHESIS_PROFILE=long OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
reader_examples=${READER_EXAMPLES:-1000}  # per reader test and round
cli_examples=${CLI_EXAMPLES:-150}  # per CLI test and round (extract and finetune take a share)
export PYTHONPATH=${PYTHONPATH:-$PWD}
export FUZZ_COUNT_FILE=${FUZZ_COUNT_FILE:-$log.cases}
: > "$FUZZ_COUNT_FILE"
deadline=$(( $(date +%s) + minutes * 60 ))
: > "$log"
round=0
while [ "$(date +%s)" -lt "$deadline" ]; do
    round=$((round + 1))
    left=$(( deadline - $(date +%s) ))
    echo "=== round $round ($(date -u +%H:%M:%S) UTC, ${left} s left)" >> "$log"
    # the readers are cheap and the CLI runs dear: each file gets its own budget per round
    FUZZ_EXAMPLES=$reader_examples timeout "$left" "$python" -m pytest -q -p no:cacheprovider \
        --hypothesis-show-statistics tests/test_fuzz_readers.py >> "$log" 2>&1
    status=$?
    left=$(( deadline - $(date +%s) ))
    if [ "$status" -ne 124 ] && [ "$left" -gt 0 ]; then
        FUZZ_EXAMPLES=$cli_examples timeout "$left" "$python" -m pytest -q -p no:cacheprovider \
            --hypothesis-show-statistics tests/test_fuzz_cli.py >> "$log" 2>&1
        status=$?
    fi
    echo "=== round $round exit $status" >> "$log"
done
"$python" - "$log" "$FUZZ_COUNT_FILE" <<'PY'
import re, sys
from collections import Counter, defaultdict

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
        counts = re.search(r"(\d+) passing(?: examples?)?, (\d+) failing", line)
        if counts and test:
            passing[test] += int(counts.group(1))
            failing[test] += int(counts.group(2))
print(f"finished rounds: {finished} of {len(rounds)}; Hypothesis statistics of the finished rounds:")
for test in sorted(passing):
    print(f"{passing[test] + failing[test]:>8} cases  {failing[test]:>4} failing  {test}")
print(f"{sum(passing.values()) + sum(failing.values()):>8} cases in all")
for name in sorted(set(re.findall(r"^FAILED (\S+)", text, flags=re.M))):
    print("FAILED", name)
cases = Counter()
results = defaultdict(Counter)
for line in open(sys.argv[2], encoding="utf-8", errors="replace"):
    test, _, result = line.rstrip("\n").partition("\t")
    cases[test] += 1
    results[test][result] += 1
print("every example run (all rounds, a cut one included; shrinking counts too), by outcome:")
for test in sorted(cases):
    detail = ", ".join(f"{k} {v}" for k, v in sorted(results[test].items()))
    print(f"{cases[test]:>8} cases  {test}  ({detail})")
print(f"{sum(cases.values()):>8} cases in all")
PY
