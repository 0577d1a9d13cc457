"""Thread counts under contention: a small model's training step with 1 and 2 intra-op threads,
on the machine as it is ("quiet") and with one extra busy process ("busy"), side by side.

    python bench/threads_bench.py [--repeats 15] [--batch 8]

Workloads: the CLIP-only Moment-DETR (4.2 M parameters, official shape) with READ + PVLA, one
training step (forward, losses, PVLA, backward, AdamW) on a random batch; and PVLA's partial OT
alone (B=32, 75 x 32 tokens, d=256, s=0.5, cost + solve + backward). Within each condition the
thread counts alternate call by call (1, 2, 1, 2, ...) so that load from elsewhere falls on both;
figures are wall-clock medians. "busy" starts one process that spins on a core for the duration
(the case readcli's thread policy is for: docs/performance.md) and stops it afterwards. The
policy's own choice (readcli.threads.resolve_threads with no request and no environment) is printed
per condition; the load average it reads lags by up to a minute.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from _grounding_batch import random_grounding_batch  # bench/ is on sys.path when run as a script

SPIN = "import time\nend = time.time() + 3600\nwhile time.time() < end:\n    pass\n"


def model_step(batch: int) -> Callable[[], None]:
    import torch

    from readcli.adapters import method_settings
    from readcli.adapters.inject import inject
    from readcli.alignment import PVLASettings, pvla_loss
    from readcli.backbones.moment_detr.config import MomentDETRConfig
    from readcli.backbones.registry import build_backbone
    from readcli.training.grounding_loss import GroundingCriterion, GroundingLossWeights

    torch.manual_seed(0)
    model = build_backbone(MomentDETRConfig(), device="cpu")
    inject(model, method_settings("read"))
    model.train()
    model.collect_block_states = True
    criterion, pvla = GroundingCriterion(GroundingLossWeights()), PVLASettings()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    inputs, targets = random_grounding_batch(batch, "cpu")

    def step() -> None:
        outputs = model(**inputs)
        loss = criterion(outputs, targets).total + pvla_loss(outputs["block_states"], settings=pvla)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def ot_step() -> Callable[[], None]:
    import torch

    from readcli.alignment import cosine_cost, solve_partial_ot

    g = torch.Generator().manual_seed(0)
    video, text = torch.randn(32, 75, 256, generator=g), torch.randn(32, 32, 256, generator=g)

    def step() -> None:
        v, t = video.clone().requires_grad_(), text.clone().requires_grad_()
        solve_partial_ot(cosine_cost(v, t), mass=0.5).distance.sum().backward()

    return step


def alternate(fn: Callable[[], None], counts: tuple[int, ...], repeats: int) -> dict[int, float]:
    """Median wall seconds of fn per thread count, the counts alternating call by call."""
    import torch

    times: dict[int, list[float]] = {n: [] for n in counts}
    for n in counts:  # warm-up per count (oneDNN primitives, thread pool start)
        torch.set_num_threads(n)
        fn()
    for _ in range(repeats):
        for n in counts:
            torch.set_num_threads(n)
            start = time.perf_counter()
            fn()
            times[n].append(time.perf_counter() - start)
    return {n: statistics.median(values) for n, values in times.items()}


def measure(
    workloads: dict[str, Callable[[], None]], counts: tuple[int, ...], repeats: int
) -> dict[str, Any]:
    from readcli.threads import resolve_threads

    saved = {k: os.environ.pop(k) for k in ("READCLI_THREADS", "OMP_NUM_THREADS") if k in os.environ}
    policy = resolve_threads()
    os.environ.update(saved)
    out: dict[str, Any] = {"load": os.getloadavg()[0], "policy": policy}
    for name, fn in workloads.items():
        out[name] = alternate(fn, counts, repeats)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    import torch

    counts = (1, 2)
    workloads = {f"READ+PVLA step, batch {args.batch}": model_step(args.batch), "partial OT s=0.5": ot_step()}
    results = {"quiet": measure(workloads, counts, args.repeats)}
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(1.0)  # let the scheduler place it
        results["busy"] = measure(workloads, counts, args.repeats)
    finally:
        spinner.kill()
        spinner.wait()
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, wall-clock medians of {args.repeats}, thread "
        "counts alternating call by call; 'busy' = one extra process spinning on a core"
    )
    for condition, r in results.items():
        print(f"{condition}: load average {r['load']:.2f}, thread policy would pick {r['policy']}")
    print(f"{'workload':28s} {'threads':>7s} {'quiet ms':>9s} {'busy ms':>9s} {'busy/quiet':>10s}")
    for name in workloads:
        for n in counts:
            quiet, busy = results["quiet"][name][n] * 1e3, results["busy"][name][n] * 1e3
            print(f"{name:28s} {n:7d} {quiet:9.1f} {busy:9.1f} {busy / quiet:9.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
