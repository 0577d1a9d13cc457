#!/usr/bin/env bash
# The wheel works without -e (issue 16 item 6): build it, `pip install` it into a fresh virtual
# environment, then, from a folder outside the checkout, load every preset card and run
# `readcli ground --help`. The dependencies (torch is 5 GB) are not installed a second time: a .pth
# line puts the CI venv's site-packages on the path. Python adds such a line to sys.path without
# running the .pth files inside it, so the CI venv's editable readcli stays invisible (checked below).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
deps=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")

.venv/bin/python -m pip wheel -q --no-deps --no-build-isolation --no-index -w "$work/dist" . >"$work/wheel.log" 2>&1 \
  || { tail -20 "$work/wheel.log"; exit 1; }
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --no-deps --no-index "$work"/dist/readcli-*.whl
site=$("$work/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$deps" >"$site/ci-dependencies.pth"

cd "$work"
HF_HUB_OFFLINE=1 "$work/venv/bin/python" - "$site" <<'PY'
import sys
from pathlib import Path

import readcli
from readcli.backbones.presets import cards_dir, load_card, preset_names
from readcli.backbones.vision_guided.checkpoint_io import VG_PRESETS, load_vg_card

site = Path(sys.argv[1]).resolve()
assert Path(readcli.__file__).resolve().is_relative_to(site), f"readcli came from {readcli.__file__}"
assert Path(str(cards_dir())).resolve() == site / "readcli" / "models", cards_dir()
names = [load_card(n).name for n in preset_names()] + [load_vg_card(n).name for n in VG_PRESETS]
print("wheel: installed without -e; cards:", " ".join(names))
PY
HF_HUB_OFFLINE=1 "$work/venv/bin/readcli" ground --help >"$work/help.txt"
grep -q "Usage" "$work/help.txt"
echo "wheel: readcli ground --help ran from the installed wheel"
