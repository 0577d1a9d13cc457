"""Mixed precision: READ+PVLA training-step time under float32 and under bf16 (and fp16) autocast.

The CLIP-only Moment-DETR at batch 32 with random features (75 clips x 514, 32 words x 512), the
official losses plus PVLA, AdamW, through the loop's own step (readcli.training.step.Stepper), so
fp16 includes the GradScaler. Prints the median step time per setting and the PVLA value's gap to
float32 on the same weights (the transport runs in float32 in every setting; the gap comes from the
bf16 backbone).

    python bench/amp_bench.py [--steps 5] [--device auto] [--batch 32] [--amp off,bf16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from _grounding_batch import random_grounding_batch  # bench/ is on sys.path when run as a script


def run(amp: str, steps: int, batch: int, device_name: str) -> dict[str, Any]:
    import torch

    from readcli.adapters import method_settings
    from readcli.adapters.inject import inject
    from readcli.alignment import PVLASettings, pvla_loss
    from readcli.backbones.moment_detr.config import MomentDETRConfig
    from readcli.backbones.registry import build_backbone
    from readcli.training.distributed import Dist, resolve_device
    from readcli.training.grounding_loss import GroundingCriterion, GroundingLossWeights
    from readcli.training.step import StepOutput, Stepper, autocast

    torch.manual_seed(0)
    device = resolve_device(device_name)
    model = build_backbone(MomentDETRConfig(), device=str(device))
    inject(model, method_settings("read"))
    model.train()
    model.collect_block_states = True
    inputs, targets = random_grounding_batch(batch, device)
    criterion, pvla = GroundingCriterion(GroundingLossWeights()), PVLASettings()

    class Task:
        def train_step(self, model: Any, batch: Any, device: Any) -> StepOutput:
            outputs = model(**inputs)
            alignment = pvla_loss(outputs["block_states"], settings=pvla)
            return StepOutput(criterion(outputs, targets).total + alignment, {"loss_pvla": alignment})

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    stepper = Stepper(model, Task(), optimizer, params, amp, 0.1, device, Dist())  # the loop's default clip

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad(), autocast(device, amp):  # PVLA on the initial weights, for the gap
        first = float(pvla_loss(model(**inputs)["block_states"], settings=pvla))
    stepper.step(None, 1.0, 0, 0)  # warm-up (kernel selection, oneDNN primitives)
    times = []
    for step in range(steps):
        sync()
        start = time.perf_counter()
        stepper.step(None, 1.0, 0, step + 1)
        sync()
        times.append(time.perf_counter() - start)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    return {"amp": amp, "step_ms": statistics.median(times) * 1000, "pvla0": first, "device": name}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="off,bf16", help="comma-separated: off, bf16, fp16")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = [run(amp, args.steps, args.batch, args.device) for amp in args.amp.split(",")]
    reference = rows[0]["pvla0"]
    print(f"device {rows[0]['device']}, batch {args.batch}, READ+PVLA, median of {args.steps} steps")
    for row in rows:
        gap = abs(row["pvla0"] - reference)
        print(
            f"  amp {row['amp']:5s} step {row['step_ms']:8.1f} ms   PVLA {row['pvla0']:.6f} (gap {gap:.1e})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
