"""Inputs for bench/gpu_check.sh, built offline: random CLIP weights, a tiny backbone, a small dataset.

    python bench/_gpu_check_inputs.py --out WORK --shared-data ../shared/data

Writes WORK/vit-b-32-random.safetensors (open_clip's ViT-B-32 with random weights, the path the
tests use for `readcli ground` without the network), WORK/tiny-backbone (a tiny Moment-DETR whose
widths match the dataset) and WORK/qvh (12 train and 6 val real QVHighlights rows with small random
features, tests/reliability_inputs.py's layout). Prints one line per file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shared-data", type=Path, required=True)
    args = parser.parse_args()
    import open_clip
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(REPO / "tests"))
    import reliability_inputs  # the tests' own builders: the same rows and features the tests train on

    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    weights = args.out / "vit-b-32-random.safetensors"
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(weights))
    print(f"clip weights {weights}")
    backbone = reliability_inputs.tiny_backbone(args.out / "tiny-backbone")
    print(f"tiny backbone {backbone}")
    data = reliability_inputs.grounding_dir(args.out / "qvh", args.shared_data, train=12, val=6)
    print(f"dataset {data}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
