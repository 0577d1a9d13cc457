"""Benchmark of readcli's batched OT against POT: its batched balanced solver and its partial loop.

Run: .venv/bin/python bench/ot_bench.py [--threads 1,default,policy] [--repeats 15] [--sections ...]

Every figure is wall-clock time (unless --clock cpu), the median of repeats, and every ratio is
measured within one run with the two solvers' calls interleaved (readcli, POT, readcli, POT, ...), so
that a busy shared machine slows both alike. Each table names its torch thread count; POT's numpy
work runs with one OpenBLAS thread. B=32, N_V=75, N_L=32, d=256, tau=0.05 unless a section says
otherwise; every step is cost (readcli's cosine_cost, the same for both) + solve + backward.

Sections (--sections, comma-separated):
  balanced  s = 1: readcli's balanced fast path (Sinkhorn) and its Dykstra scheme against POT's
            batched `ot.batch.solve_batch` (log_sinkhorn, its default, and sinkhorn) at the same tol
  main      s = 0.5: readcli against POT's per-sample `ot.partial.entropic_partial_wasserstein`
            (forward only: POT has no gradient) and, unless --skip-unrolled, the paper-style loop
  profile   where readcli's s = 0.5 step spends its time (cost, solve, backward; top operators)
  scaling   time against B and N;  memory: what autograd holds at 100 vs 1000 iterations
  gpu       on CUDA: B=--gpu-batch (256) forward+backward and peak memory (skipped without CUDA)
Feature kinds: random Gaussian tokens; structured (clips are noisy copies of words, cosine ~0.7);
hard, the trained-like set (cleaner copies, cosine ~0.9: the slowest to converge). docs/pvla.md §9.
"""

from __future__ import annotations

import os

# POT works on one small matrix at a time; a multi-threaded BLAS only spins on those (and would
# inflate --clock cpu), so numpy's OpenBLAS gets one thread. Set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402
import ot  # noqa: E402
import torch  # noqa: E402
from ot.batch import solve_batch  # noqa: E402

from readcli.alignment import cosine_cost, solve_partial_ot  # noqa: E402
from readcli.alignment.reference import unrolled_partial_ot  # noqa: E402

TAU, MASS, D = 0.05, 0.5, 256
KINDS = ("random", "structured", "hard")
# wall clock by default; --clock cpu uses this process's CPU time, steadier on a shared machine
# (with one thread it is the compute time; with more threads it adds the threads' times up)
CLOCK: Callable[[], float] = time.perf_counter


def features(
    kind: str, batch: int, n_v: int, n_l: int, *, seed: int = 0, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """random: Gaussian tokens. structured: clips are noisy copies of words (noise as large as the
    signal per dimension, cosine ~0.7) plus 30 % background clips. hard (trained-like): cleaner
    copies (noise 0.5, cosine ~0.9), 40 % background: the slowest to converge of the three."""
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
    return interleaved({"fn": (fn, 1)}, repeats, device)["fn"]


def interleaved(
    calls: dict[str, tuple[Callable[[], object], int]], rounds: int, device: str = "cpu"
) -> dict[str, float]:
    """Median seconds per call of each function; each round runs each function its count of times
    in turn, so that load on a shared machine falls on all of them alike. One warm-up call each."""
    clock = time.perf_counter if device.startswith("cuda") else CLOCK
    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn, _ in calls.values():
        fn()
    for _ in range(rounds):
        for name, (fn, count) in calls.items():
            for _ in range(count):
                sync(device)
                start = clock()
                fn()
                sync(device)
                times[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def readcli_step(
    video: torch.Tensor, text: torch.Tensor, mass: float = MASS, **solver: object
) -> tuple[torch.Tensor, int]:
    """Forward + backward: cost, batched solve, <T, C> summed, gradients to the features."""
    v, t = video.clone().requires_grad_(), text.clone().requires_grad_()
    solution = solve_partial_ot(cosine_cost(v, t), mass=mass, tau=TAU, **solver)  # type: ignore[arg-type]
    solution.distance.sum().backward()
    return solution.distance.detach(), solution.total_iterations


def pot_batch_step(
    video: torch.Tensor, text: torch.Tensor, method: str, tol: float
) -> tuple[torch.Tensor, int]:
    """POT's batched balanced solver on the same cost, envelope gradient (its default) to the features."""
    v, t = video.clone().requires_grad_(), text.clone().requires_grad_()
    result = solve_batch(cosine_cost(v, t), reg=TAU, tol=tol, max_iter=1000, method=method)
    result.value_linear.sum().backward()
    # POT tests its stop rule at iteration indices 0, 10, 20, ...: n_iter + 1 iterations ran
    return result.value_linear.detach(), int(result.log["n_iter"]) + 1


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


def clock_name() -> str:
    return "CPU time" if CLOCK is time.process_time else "wall clock"


def balanced_table(repeats: int, tol: float, with_dykstra: bool = True) -> None:
    print(
        f"== s=1 (balanced): readcli vs POT ot.batch.solve_batch, tol {tol:g} for both, "
        f"{torch.get_num_threads()} torch threads, {clock_name()}, median of {repeats} interleaved =="
    )
    for kind in KINDS:
        video, text = features(kind, 32, 75, 32)
        calls = {
            "fast": (partial(readcli_step, video, text, 1.0, tol=tol), 1),
            "dykstra": (partial(readcli_step, video, text, 1.0, tol=tol, balanced_fast_path=False), 1),
            "pot_log": (partial(pot_batch_step, video, text, "log_sinkhorn", tol), 1),
            "pot_plain": (partial(pot_batch_step, video, text, "sinkhorn", tol), 1),
        }
        if not with_dykstra:
            del calls["dykstra"]
        times = interleaved(calls, repeats)
        times.setdefault("dykstra", float("nan"))
        ours, its = readcli_step(video, text, 1.0, tol=tol)
        dyk_its = readcli_step(video, text, 1.0, tol=tol, balanced_fast_path=False)[1] if with_dykstra else 0
        pot, pot_its = pot_batch_step(video, text, "log_sinkhorn", tol)
        _, plain_its = pot_batch_step(video, text, "sinkhorn", tol)
        print(
            f"{kind:10s} readcli {times['fast'] * 1e3:6.2f} ms ({its} it) | Dykstra "
            f"{times['dykstra'] * 1e3:6.2f} ms ({dyk_its} it) | POT log_sinkhorn "
            f"{times['pot_log'] * 1e3:6.2f} ms ({pot_its} it) = "
            f"{times['pot_log'] / times['fast']:4.2f}x | POT sinkhorn {times['pot_plain'] * 1e3:6.2f} ms"
            f" ({plain_its} it) = {times['pot_plain'] / times['fast']:4.2f}x | max |d - d_POT| "
            f"{(ours - pot).abs().max().item():.1e}",
            flush=True,
        )


def main_table(repeats: int, pot_repeats: int, skip_unrolled: bool) -> None:
    print(
        f"== s={MASS} (partial): readcli vs POT's per-sample loop, {torch.get_num_threads()} torch "
        f"threads, {clock_name()}, readcli median of {repeats}, POT median of {pot_repeats}, interleaved =="
    )
    for kind in KINDS:
        video, text = features(kind, 32, 75, 32)
        per_round = max(1, repeats // pot_repeats)
        calls = {
            "readcli": (partial(readcli_step, video, text), per_round),
            "pot": (partial(pot_loop, video, text), 1),
        }
        times = interleaved(calls, pot_repeats)
        ours, iterations = readcli_step(video, text)
        pot = pot_loop(video, text)
        ours_s, pot_s = times["readcli"], times["pot"]
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


def profile(repeats: int) -> None:
    """Where the s = 0.5 step's time goes: cost forward, solve, distance + backward, per kind."""
    print(
        f"== where readcli's s={MASS} step spends its time "
        f"({torch.get_num_threads()} threads, {clock_name()}) =="
    )
    for kind in KINDS:
        video, text = features(kind, 32, 75, 32)
        parts: dict[str, list[float]] = {"cost": [], "solve": [], "backward": []}
        for _ in range(repeats + 1):
            v, t = video.clone().requires_grad_(), text.clone().requires_grad_()
            start = CLOCK()
            cost = cosine_cost(v, t)
            mid = CLOCK()
            solution = solve_partial_ot(cost, mass=MASS, tau=TAU)
            end = CLOCK()
            solution.distance.sum().backward()
            parts["cost"].append(mid - start)
            parts["solve"].append(end - mid)
            parts["backward"].append(CLOCK() - end)
        cells = "  ".join(
            f"{name} {statistics.median(values[1:]) * 1e3:6.2f} ms" for name, values in parts.items()
        )
        its = solution.iterations
        print(
            f"{kind:10s} {cells} | iterations: batch {solution.total_iterations}, per sample median "
            f"{int(its.median())}, mean {its.float().mean():.0f}, sample-iterations {int(its.sum())}",
            flush=True,
        )
    video, text = features("hard", 32, 75, 32)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(5):
        readcli_step(video, text)
    profiler.disable()
    print("five hard steps under cProfile (the solver's inner loop is numpy on CPU), top by own time:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(10)


def scaling(repeats: int) -> None:
    print(f"== time of readcli fwd+bwd (ms) against B (N_V=75, N_L=32), {torch.get_num_threads()} threads ==")
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


def gpu(repeats: int, batch: int) -> None:
    if not torch.cuda.is_available():
        print("== GPU: no CUDA device here; skipped ==")
        return
    print(f"== GPU {torch.cuda.get_device_name()}: B={batch}, N_V=75, N_L=32 fwd+bwd, peak memory ==")
    for kind in KINDS:
        video, text = features(kind, batch, 75, 32, device="cuda")
        for mass in (MASS, 1.0):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            calls = {"readcli": (partial(readcli_step, video, text, mass), 1)}
            if mass == 1.0:
                calls["pot"] = (partial(pot_batch_step, video, text, "log_sinkhorn", 1e-6), 1)
            times = interleaved(calls, repeats, device="cuda")
            peak = (torch.cuda.max_memory_allocated() - base) / 2**20
            ours, its = readcli_step(video, text, mass)
            line = f"{kind:10s} s={mass:<4} readcli {times['readcli'] * 1e3:7.2f} ms ({its} it)"
            line += f", peak +{peak:.0f} MiB"
            if "pot" in times:
                pot, _ = pot_batch_step(video, text, "log_sinkhorn", 1e-6)
                line += (
                    f" | POT solve_batch {times['pot'] * 1e3:7.2f} ms"
                    f" = {times['pot'] / times['readcli']:.2f}x,"
                    f" max gap {(ours - pot).abs().max().item():.1e}"
                )
            print(line, flush=True)


def thread_counts(text: str) -> list[int]:
    """'1,default,policy' -> [1, torch's default (one per usable core), readcli's thread policy's
    choice (readcli.threads: READCLI_THREADS, OMP_NUM_THREADS, else the free cores)]."""
    from readcli.threads import resolve_threads

    named = {"default": torch.get_num_threads(), "policy": resolve_threads()}
    return [named[item.strip()] if item.strip() in named else int(item) for item in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads", default="1", help="comma-separated torch thread counts, 'default' (torch's) or 'policy'"
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--pot-repeats", type=int, default=3, help="rounds of POT's slow per-sample loop")
    parser.add_argument("--tol", type=float, default=1e-6, help="stop tolerance for the s = 1 comparison")
    parser.add_argument("--skip-unrolled", action="store_true", help="skip the slow paper-style loop")
    parser.add_argument("--skip-dykstra", action="store_true", help="s = 1 table: skip readcli's Dykstra row")
    parser.add_argument("--sections", default="balanced,main,profile")
    parser.add_argument("--gpu-batch", type=int, default=256)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    sections = set(args.sections.split(","))
    print(
        f"torch {torch.__version__}, POT {ot.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for count in thread_counts(args.threads):
        torch.set_num_threads(count)
        if "balanced" in sections:
            balanced_table(args.repeats, args.tol, not args.skip_dykstra)
        if "main" in sections:
            main_table(args.repeats, args.pot_repeats, args.skip_unrolled)
        if "profile" in sections:
            profile(args.repeats)
        if "scaling" in sections:
            scaling(args.repeats)
        if "memory" in sections:
            memory(args.skip_unrolled)
    if "gpu" in sections:
        gpu(args.repeats, args.gpu_batch)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
