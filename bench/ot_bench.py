"""Benchmark of readcli's batched partial OT against POT's loop and the paper-style unrolled loop.

Run: .venv/bin/python bench/ot_bench.py [--threads 2] [--repeats 15] [--clock wall|cpu] [--skip-unrolled]

Prints, for B=32, N_V=75, N_L=32, d=256, tau=0.05, mass 0.5, on random and on structured
(trained-like) features: POT's per-sample loop (forward only, as POT has no gradient), the paper-style
per-sample loop (1000 unrolled iterations in autograd, then backward), readcli forward+backward, the
ratios and the distance gaps; then time against B and N, the memory backward holds at 100 vs 1000
iterations, and on a GPU (when one is present) B=256 forward+backward. docs/pvla.md has the results.
"""

from __future__ import annotations

import os

# POT works on one small matrix at a time; a multi-threaded BLAS only spins on those (and would
# inflate --clock cpu), so numpy's OpenBLAS gets one thread. Set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402
import ot  # noqa: E402
import torch  # noqa: E402

from readcli.alignment import cosine_cost, solve_partial_ot  # noqa: E402
from readcli.alignment.reference import unrolled_partial_ot  # noqa: E402

TAU, MASS, D = 0.05, 0.5, 256
# wall clock by default; --clock cpu uses this process's CPU time, steadier on a shared machine
# (with --threads 1 it is the compute time; with more threads it adds the threads' times up)
CLOCK: Callable[[], float] = time.perf_counter


def features(
    kind: str, batch: int, n_v: int, n_l: int, *, seed: int = 0, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """random: Gaussian tokens. structured: clips are noisy copies of words (noise as large as the
    signal per dimension, cosine ~0.7) plus 30 % background clips. hard: cleaner copies (noise 0.5,
    cosine ~0.9), 40 % background: the slowest to converge of the three."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(batch, n_l, D, generator=g)
    if kind == "random":
        video = torch.randn(batch, n_v, D, generator=g)
    else:
        noise, background = (1.0, 0.3) if kind == "structured" else (0.5, 0.4)
        pick = torch.randint(0, n_l, (batch, n_v), generator=g)
        video = torch.gather(text, 1, pick[..., None].expand(-1, -1, D))
        video = video + noise * torch.randn(batch, n_v, D, generator=g)
        clutter = torch.rand(batch, n_v, 1, generator=g) < background
        video = torch.where(clutter, torch.randn(batch, n_v, D, generator=g), video)
    return video.to(device), text.to(device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], repeats: int, device: str = "cpu") -> float:
    """Median time in seconds after one warm-up call (always wall time on a GPU)."""
    clock = time.perf_counter if device.startswith("cuda") else CLOCK
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = clock()
        fn()
        sync(device)
        times.append(clock() - start)
    return statistics.median(times)


def readcli_step(video: torch.Tensor, text: torch.Tensor, **solver: object) -> tuple[torch.Tensor, int]:
    """Forward + backward: cost, batched solve, <T, C> summed, gradients to the features."""
    v, t = video.clone().requires_grad_(), text.clone().requires_grad_()
    solution = solve_partial_ot(cosine_cost(v, t), mass=MASS, tau=TAU, **solver)  # type: ignore[arg-type]
    solution.distance.sum().backward()
    return solution.distance.detach(), solution.total_iterations


def pot_loop(video: torch.Tensor, text: torch.Tensor) -> np.ndarray:
    """POT per sample on float64 numpy costs, its defaults (1000 iterations, stopThr 1e-100)."""
    v = torch.nn.functional.normalize(video.double(), dim=-1).cpu().numpy()
    t = torch.nn.functional.normalize(text.double(), dim=-1).cpu().numpy()
    a, b = np.full(v.shape[1], 1 / v.shape[1]), np.full(t.shape[1], 1 / t.shape[1])
    out = []
    for i in range(v.shape[0]):
        cost = 1 - v[i] @ t[i].T
        plan = ot.partial.entropic_partial_wasserstein(a, b, cost, TAU, m=MASS)
        out.append((plan * cost).sum())
    return np.array(out)


def paper_loop(video: torch.Tensor, text: torch.Tensor, n_iter: int = 1000) -> torch.Tensor:
    """Per sample: autograd cost, n_iter unrolled Dykstra iterations, then one backward."""
    v, t = video.clone().requires_grad_(), text.clone().requires_grad_()
    a = torch.full((v.shape[1],), 1 / v.shape[1], device=v.device)
    b = torch.full((t.shape[1],), 1 / t.shape[1], device=v.device)
    distances = []
    for i in range(v.shape[0]):
        norm = torch.nn.functional.normalize
        cost = 1 - norm(v[i], dim=-1) @ norm(t[i], dim=-1).T  # (N_V, N_L)
        plan = unrolled_partial_ot(cost, a, b, mass=MASS, tau=TAU, n_iter=n_iter)
        distances.append((plan * cost).sum())
    total = torch.stack(distances)
    total.sum().backward()
    return total.detach()


def saved_bytes(fn: Callable[[], object]) -> int:
    """Bytes autograd holds for backward while fn builds its graph (distinct storages)."""
    seen: dict[int, int] = {}

    def pack(x: torch.Tensor) -> torch.Tensor:
        seen[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        fn()
    return sum(seen.values())


def main_table(repeats: int, skip_unrolled: bool) -> None:
    clock = "CPU time" if CLOCK is time.process_time else "wall time"
    print(
        f"== B=32, N_V=75, N_L=32, d={D}, tau={TAU}, mass={MASS}, "
        f"{torch.get_num_threads()} threads, {clock} =="
    )
    for kind in ("random", "structured", "hard"):
        video, text = features(kind, 32, 75, 32)
        ours_s = timed(partial(readcli_step, video, text), repeats)
        ours, iterations = readcli_step(video, text)
        start = CLOCK()
        pot = pot_loop(video, text)
        pot_s = CLOCK() - start
        line = (
            f"{kind:10s} readcli fwd+bwd {ours_s * 1e3:7.2f} ms ({iterations} it) | POT loop {pot_s:6.3f} s "
            f"= {pot_s / ours_s:6.0f}x, max |d - d_POT| {np.abs(ours.double().numpy() - pot).max():.1e}"
        )
        if not skip_unrolled:
            start = CLOCK()
            paper = paper_loop(video, text)
            paper_s = CLOCK() - start
            gap = (ours - paper).abs().max().item()
            line += f" | paper-style loop {paper_s:6.2f} s = {paper_s / ours_s:6.0f}x, max gap {gap:.1e}"
        print(line, flush=True)


def scaling(repeats: int) -> None:
    print("== time of readcli fwd+bwd (ms) against B (N_V=75, N_L=32) ==")
    for batch in (1, 4, 16, 64, 256):
        cells = []
        for kind in ("random", "structured"):
            video, text = features(kind, batch, 75, 32)
            cells.append(f"{kind} {timed(partial(readcli_step, video, text), repeats) * 1e3:8.2f}")
        print(f"B={batch:4d}  " + "  ".join(cells), flush=True)
    print("== time of readcli fwd+bwd (ms) against N = N_V = N_L (B=32); solver time per iteration ==")
    for n in (32, 64, 128, 256, 512):
        cells = []
        for kind in ("random", "structured"):
            video, text = features(kind, 32, n, n)
            total = timed(partial(readcli_step, video, text), max(3, repeats // 3))
            cost = cosine_cost(video, text)
            per_iteration = (
                timed(partial(solve_partial_ot, cost, mass=MASS, tau=TAU, tol=0.0, max_iter=50), 3) / 50
            )
            its = readcli_step(video, text)[1]
            cells.append(f"{kind} {total * 1e3:9.2f} ({its:4d} it, {per_iteration * 1e6:7.1f} us/it)")
        print(f"N={n:4d}  " + "  ".join(cells), flush=True)


def memory(skip_unrolled: bool) -> None:
    print("== memory autograd holds for backward (B=32, structured), iterations forced with tol=0 ==")
    video, text = features("structured", 32, 75, 32)
    for n_iter in (100, 1000):
        ours = saved_bytes(partial(readcli_step, video, text, tol=0.0, max_iter=n_iter))
        line = f"{n_iter:5d} iterations: readcli {ours / 2**20:8.2f} MiB"
        if not skip_unrolled:
            paper = saved_bytes(partial(paper_loop, video, text, n_iter=n_iter))
            line += f" | paper-style loop {paper / 2**20:9.1f} MiB"
        print(line, flush=True)


def gpu(repeats: int) -> None:
    if not torch.cuda.is_available():
        print("== GPU: no CUDA device here; skipped ==")
        return
    print(f"== GPU {torch.cuda.get_device_name()}: B=256, N_V=75, N_L=32 fwd+bwd ==")
    for kind in ("random", "structured", "hard"):
        video, text = features(kind, 256, 75, 32, device="cuda")
        torch.cuda.reset_peak_memory_stats()
        seconds = timed(partial(readcli_step, video, text), repeats, device="cuda")
        peak = torch.cuda.max_memory_allocated() / 2**20
        print(f"{kind:10s} {seconds * 1e3:7.2f} ms ({readcli_step(video, text)[1]} it), peak {peak:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--skip-unrolled", action="store_true", help="skip the slow paper-style loop")
    parser.add_argument("--sections", default="main,scaling,memory,gpu")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    sections = set(args.sections.split(","))
    if "main" in sections:
        main_table(args.repeats, args.skip_unrolled)
    if "scaling" in sections:
        scaling(args.repeats)
    if "memory" in sections:
        memory(args.skip_unrolled)
    if "gpu" in sections:
        gpu(args.repeats)


if __name__ == "__main__":
    main()
