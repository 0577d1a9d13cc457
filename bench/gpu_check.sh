#!/usr/bin/env bash
# One-shot GPU check of readcli: every CUDA path once, timed, in one table (docs/performance.md).
#
#   bash bench/gpu_check.sh [--dry-run]
#
# On a CUDA machine it runs, in this order, each step under its own time limit:
#   inputs     random ViT-B-32 weights, a tiny backbone and a small dataset (bench/_gpu_check_inputs.py)
#   cuda-tests the tests marked `cuda` (pytest -m cuda)
#   ot-bench   bench/ot_bench.py --sections gpu: B=256 forward+backward, peak memory, POT batch at s=1
#   train      bench/train_bench.py --device cuda: full / READ / READ+PVLA step time and peak memory
#   amp        bench/amp_bench.py --device cuda --amp off,bf16,fp16
#   ground     readcli ground on a real clip (shared data videos/book.mp4) with --device cuda
#   finetune   readcli finetune, two epochs, --device cuda, on the small dataset
# then prints one table (step, status, seconds, log) and exits 1 if any step failed; each step's
# output is printed as it runs and kept in the work folder. Expected: well under 8 minutes on one
# H200 (the limits below add up to 8 minutes).
# Without CUDA it prints one line and exits 0 at once. --dry-run prints the commands and exits 0.
#
# Environment: PYTHON (default: .venv/bin/python, else python3), READCLI_SHARED_DATA (default:
# ../shared/data next to the repository), GPU_CHECK_WORK (default: a new temporary folder),
# GPU_CHECK_DEVICE=cpu (a rehearsal of every step on the CPU, for changing this script without a GPU).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$arg' (use --dry-run or --help)" >&2; exit 2 ;;
  esac
done

if [[ -n "${PYTHON:-}" ]]; then
  PY="$PYTHON"
elif [[ -x "$REPO/.venv/bin/python" ]]; then
  PY="$REPO/.venv/bin/python"
else
  PY="python3"
fi
DATA="${READCLI_SHARED_DATA:-$REPO/../shared/data}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
# a CPU rehearsal checks the plumbing, not speed: one timed step per bench, ten times the limits
if [[ "$DEVICE" == cuda ]]; then N_STEPS=10; SCALE=1; else N_STEPS=1; SCALE=10; fi
WORK="${GPU_CHECK_WORK:-}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [[ "$DRY_RUN" == 0 && "$DEVICE" == cuda ]]; then
  # No driver at all: say so without starting Python. Otherwise ask torch (a CPU-only build, or
  # CUDA_VISIBLE_DEVICES="", also means no CUDA here).
  if ! command -v nvidia-smi >/dev/null 2>&1 && ! compgen -G "/dev/nvidia[0-9]*" >/dev/null; then
    echo "gpu_check: no CUDA device on this machine (no NVIDIA driver); nothing to check."
    exit 0
  fi
  if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device visible to torch ($PY); nothing to check."
    exit 0
  fi
fi

if [[ "$DRY_RUN" == 1 ]]; then
  WORK="${WORK:-${TMPDIR:-/tmp}/readcli-gpu-check.XXXXXX}"  # a dry run creates nothing
elif [[ -z "$WORK" ]]; then
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/readcli-gpu-check.XXXXXX")"
else
  mkdir -p "$WORK"
fi
export READCLI_CACHE="$WORK/cache"  # ground's feature cache: nothing outside the work folder

# name | time limit (s) | command
STEPS=(
  "inputs|60|$PY bench/_gpu_check_inputs.py --out $WORK --shared-data $DATA"
  "cuda-tests|90|$PY -m pytest -q -x -m cuda -p no:cacheprovider tests"
  "ot-bench|60|$PY bench/ot_bench.py --sections gpu --gpu-batch 256 --repeats 10"
  "train|100|$PY bench/train_bench.py --device $DEVICE --steps $N_STEPS"
  "amp|60|$PY bench/amp_bench.py --device $DEVICE --amp off,bf16,fp16 --steps $N_STEPS"
  "ground|50|$PY -m readcli ground $DATA/videos/book.mp4 'a book on a table' --backbone $DATA/moment_detr/parity_model.ckpt --clip-weights $WORK/vit-b-32-random.safetensors --device $DEVICE --top-k 2 --json"
  "finetune|60|$PY -m readcli finetune --data $WORK/qvh --out $WORK/finetune-run --backbone $WORK/tiny-backbone --epochs 2 --batch-size 4 --device $DEVICE"
)

if [[ "$DRY_RUN" == 1 ]]; then
  echo "gpu_check --dry-run: work folder $WORK, python $PY, shared data $DATA"
  for step in "${STEPS[@]}"; do
    IFS='|' read -r name limit command <<<"$step"
    printf '%-10s (limit %3ss)  %s\n' "$name" "$limit" "$command"
  done
  exit 0
fi

"$PY" -c "import torch; print(f'gpu_check: torch {torch.__version__}, CUDA {torch.version.cuda}, device', \
  torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu (rehearsal)')"
echo "gpu_check: work folder $WORK"

declare -a ROWS=()
FAILED=0
TOTAL_START=$SECONDS
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit command <<<"$step"
  log="$WORK/$name.log"
  echo "=== $name: $command"
  start=$SECONDS
  # bash -c: the ground query is quoted inside the command string
  if timeout --kill-after=10 "$((limit * SCALE))" bash -c "$command" 2>&1 | tee "$log"; then
    status="ok"
  else
    code=${PIPESTATUS[0]}
    if [[ "$code" == 124 || "$code" == 137 ]]; then status="TIMEOUT (${limit}s)"; else status="FAIL (exit $code)"; fi
    FAILED=1
  fi
  ROWS+=("$(printf '%-10s | %-16s | %6ss | %s' "$name" "$status" "$((SECONDS - start))" "$log")")
  if [[ "$name" == "inputs" && "$status" != "ok" ]]; then
    echo "gpu_check: the inputs could not be built; the steps after need them" >&2
    break
  fi
done

echo
echo "step       | status           | time    | log"
echo "-----------+------------------+---------+----"
for row in "${ROWS[@]}"; do echo "$row"; done
echo "total $((SECONDS - TOTAL_START)) s; $([[ $FAILED == 0 ]] && echo 'all steps passed' || echo 'FAILED')"
echo
echo "figures (from the logs above):"
# the result lines of each bench: OT rows per feature kind, the train table, AMP rows, finetune metrics
grep -hE '^(== GPU|random|structured|hard) ' "$WORK/ot-bench.log" 2>/dev/null | sed 's/^/  ot     /' || true
grep -hE '^(Moment-DETR|method|full|read|READ|PVLA share)' "$WORK/train.log" 2>/dev/null | sed 's/^/  train  /' || true
grep -hE '^(device|  amp )' "$WORK/amp.log" 2>/dev/null | sed 's/^/  amp    /' || true
grep -hE 'MR-full-mAP|trainable' "$WORK/finetune.log" 2>/dev/null | sed 's/^/  tune   /' || true
exit "$FAILED"
