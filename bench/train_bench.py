"""Training-step time and peak memory: READ(-PVLA) vs full fine-tuning on the CLIP-only Moment-DETR.

One run prints, for batch 32 with random features (75 clips x 514, 32 words x 512), per method: the
trainable parameters, the median step time (forward, official losses, PVLA when on, backward, AdamW
step), the peak memory training adds on top of the loaded model and its inputs (gradients, AdamW
state, activations), and PVLA's share of the step (the solver and its backward, timed alone).
Targets (issue 4): READ peak memory <= 0.6x full; PVLA <= 15 % of the step.

Each configuration runs in its own process so that peak memory is not shared between them. On CPU the
peak is the process's resident high-water mark, reset just before the first step, minus its size then
(bench/_peak_memory.py); on CUDA torch.cuda.max_memory_allocated minus the allocation then.

    python bench/train_bench.py [--steps 10] [--device auto] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _grounding_batch import random_grounding_batch  # bench/ is on sys.path when run as a script
from _peak_memory import peak_since, start_peak

CONFIGS = {
    "full": {"method": "full", "pvla": False},
    "read": {"method": "read", "pvla": False},
    "read+pvla": {"method": "read", "pvla": True},
}


def child(name: str, steps: int, batch: int, device_name: str) -> dict[str, float]:
    import torch

    from readcli.adapters import count_parameters, method_settings
    from readcli.adapters.inject import inject
    from readcli.alignment import PVLASettings, pvla_loss
    from readcli.backbones.moment_detr.config import MomentDETRConfig
    from readcli.backbones.registry import build_backbone
    from readcli.training.grounding_loss import GroundingCriterion, GroundingLossWeights
    from readcli.training.loop import resolve_device

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    device = resolve_device(device_name)
    config = CONFIGS[name]
    model = build_backbone(MomentDETRConfig(), device=str(device))  # the official CLIP-only shape
    inject(model, method_settings(str(config["method"])))
    model.train()
    model.collect_block_states = bool(config["pvla"])
    criterion = GroundingCriterion(GroundingLossWeights())
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    inputs, targets = random_grounding_batch(batch, device)
    pvla = PVLASettings()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        outputs = model(**inputs)
        loss = criterion(outputs, targets).total
        if config["pvla"]:
            loss = loss + pvla_loss(outputs["block_states"], settings=pvla)
            last_states.append(outputs["block_states"])
            del last_states[:-1]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def pvla_alone() -> float:
        """PVLA's own cost on the last step's block states: the solver plus its backward to the states."""
        states = last_states[-1]
        video = states.video.detach().requires_grad_()
        text = states.text.detach().requires_grad_()
        sync()
        start = time.perf_counter()
        alignment = pvla_loss(video, text, states.video_mask, states.text_mask, settings=pvla)
        alignment.backward()
        sync()
        return time.perf_counter() - start

    last_states: list = []
    # The baseline is taken before the first step, so the peak includes what training allocates
    # once (gradients, AdamW state) as well as activations; the first step is not timed.
    sync()
    before = start_peak(device)
    step()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    peak = peak_since(device, before)
    pvla_times = [pvla_alone() for _ in range(steps)] if config["pvla"] else []
    count = count_parameters(model)
    step_s = statistics.median(times)
    return {
        "trainable": count.trainable,
        "percent": count.percent,
        "step_ms": step_s * 1000,
        "peak_mb": max(peak, 0) / 2**20,
        "pvla_ms": statistics.median(pvla_times) * 1000 if pvla_times else 0.0,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu x{torch.get_num_threads()}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.batch, args.device)))
        return 0
    results = {}
    for name in CONFIGS:
        cmd = [sys.executable, __file__, "--child", name, "--steps", str(args.steps),
               "--batch", str(args.batch), "--device", args.device]  # fmt: skip
        output = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(output.strip().splitlines()[-1])
    device = results["full"]["device"]
    print(f"Moment-DETR CLIP-only (4.2 M params), batch {args.batch}, {args.steps} steps, {device}")
    print(f"{'method':<11} {'trainable':>10} {'%':>7} {'step ms':>9} {'peak MB':>9} {'x full':>7}")
    full_peak = results["full"]["peak_mb"]
    for name, r in results.items():
        ratio = r["peak_mb"] / full_peak if full_peak else float("nan")
        row = f"{name:<11} {r['trainable']:>10,} {r['percent']:>6.2f}% {r['step_ms']:>9.1f}"
        print(f"{row} {r['peak_mb']:>9.1f} {ratio:>7.2f}")
    read_ratio = results["read"]["peak_mb"] / full_peak
    pvla = results["read+pvla"]
    share = pvla["pvla_ms"] / pvla["step_ms"]
    verdict = "PASS" if read_ratio <= 0.6 else "MISS"
    print(f"READ peak memory / full: {read_ratio:.2f}x (target <= 0.6x): {verdict}")
    print(
        f"PVLA share of the READ+PVLA step: {pvla['pvla_ms']:.1f} ms of {pvla['step_ms']:.1f} ms "
        f"= {share:.1%} (target <= 15 %): {'PASS' if share <= 0.15 else 'MISS'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
