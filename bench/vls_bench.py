"""Vision-guided BART (bart-base size, random weights): training step time and peak memory, READ vs full
fine-tuning, and generation tokens/s, in one run.

Inputs have How2's sizes by default: transcripts of 512 tokens, 256 video rows of 2048-d features,
summaries of 64 tokens. Per configuration (full, read, read+pvla) it prints the trainable parameters,
the median step time (forward, token loss, PVLA when on, backward, AdamW step) and the peak memory
of training above the loaded model (gradients, optimiser state and activations; measured from
before the first step). Then beam-search generation (beams 4, no_repeat_ngram_size 3, 64 new tokens,
end token disabled so every summary has the full length): READ generates without a key-value cache
(docs/summarization.md), full fine-tuning with one.
Target (issue 6): READ peak memory <= 0.6x full.

Each configuration runs in its own process. On CUDA the peak is torch.cuda.max_memory_allocated
minus the allocation before the first step; on CPU the peak resident set size (VmHWM, reset through
/proc/self/clear_refs before the first step) minus the resident size at that moment.

    python bench/vls_bench.py [--steps 5] [--batch 8] [--device auto] [--input-tokens 512] ...
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from _peak_memory import peak_since, start_peak  # bench/ is on sys.path when run as a script

CONFIGS = {
    "full": {"method": "full", "pvla": False},
    "read": {"method": "read", "pvla": False},
    "read+pvla": {"method": "read", "pvla": True},
}


def _inputs(args: argparse.Namespace, device: Any) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(1)
    b = args.batch
    labels = torch.randint(3, 50_000, (b, args.target_tokens), generator=gen)
    return {
        "input_ids": torch.randint(3, 50_000, (b, args.input_tokens), generator=gen).to(device),  # (B, S)
        "attention_mask": torch.ones(b, args.input_tokens, dtype=torch.long).to(device),  # (B, S)
        "video": torch.randn(b, args.video_rows, 2048, generator=gen).to(device),  # (B, T, 2048)
        "video_mask": torch.ones(b, args.video_rows, dtype=torch.long).to(device),  # (B, T)
        "labels": labels.to(device),  # (B, R)
    }


def child(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from readcli.adapters import count_parameters, method_settings
    from readcli.adapters.inject import inject
    from readcli.alignment import PVLASettings, pvla_loss
    from readcli.backbones.vision_guided.checkpoint_io import build_vision_guided
    from readcli.backbones.vision_guided.config import (
        GenerationSettings,
        VisionGuidedConfig,
        base_text_config,
    )
    from readcli.training.loop import resolve_device

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    device = resolve_device(args.device)
    config = CONFIGS[name]
    model = build_vision_guided(base_text_config("bart"), VisionGuidedConfig("bart")).to(device)
    inject(model, method_settings(str(config["method"])))
    model.train()
    model.collect_block_states = bool(config["pvla"])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    batch = _inputs(args, device)
    pvla = PVLASettings()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            outputs = model(**batch)
            loss = outputs["loss"]
            if config["pvla"]:
                loss = loss + pvla_loss(outputs["block_states"], settings=pvla)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    sync()
    before = start_peak(device)
    times = []
    for _ in range(args.steps + 1):  # the first step (allocator, optimiser state) is not timed
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    peak = peak_since(device, before)
    count = count_parameters(model)
    result: dict[str, Any] = {
        "trainable": count.trainable,
        "percent": count.percent,
        "step_ms": statistics.median(times[1:]) * 1000,
        "peak_mb": max(peak, 0) / 2**20,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu x{torch.get_num_threads()}",
    }
    if name != "read+pvla":
        model.eval()
        text_model: Any = model.text_model
        text_model.generation_config.eos_token_id = None  # every summary runs to max_length
        settings = GenerationSettings(max_length=args.summary_tokens)
        gen_batch = {k: v[: args.gen_batch] for k, v in batch.items() if k != "labels"}
        model.generate(**gen_batch, settings=GenerationSettings(max_length=2))  # warm-up, not timed
        sync()
        start = time.perf_counter()
        ids = model.generate(**gen_batch, settings=settings)
        sync()
        seconds = time.perf_counter() - start
        tokens = (ids.shape[1] - 1) * ids.shape[0]
        result.update(
            gen_tokens=tokens, gen_s=seconds, tokens_per_s=tokens / seconds, kv_cache=model.uses_kv_cache()
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--input-tokens", type=int, default=512)
    parser.add_argument("--video-rows", type=int, default=256)
    parser.add_argument("--target-tokens", type=int, default=64)
    parser.add_argument("--summary-tokens", type=int, default=64)
    parser.add_argument("--gen-batch", type=int, default=4)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast in the training step")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return 0
    results = {}
    forwarded = list(sys.argv[1:])
    for name in CONFIGS:
        cmd = [sys.executable, __file__, *forwarded, "--child", name]
        output = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(output.strip().splitlines()[-1])
    print(
        f"VG-BART (bart-base size, random weights) on {results['full']['device']}: batch {args.batch}, "
        f"{args.input_tokens} tokens + {args.video_rows} video rows in, {args.target_tokens} out, "
        f"{args.steps} timed steps{', bf16' if args.bf16 else ''}"
    )
    print(f"{'method':<10} {'trainable':>12} {'%':>7} {'step ms':>9} {'peak MB':>9} {'x full':>7}")
    full_peak = results["full"]["peak_mb"]
    for name, r in results.items():
        ratio = r["peak_mb"] / full_peak if full_peak else float("nan")
        row = f"{name:<10} {r['trainable']:>12,} {r['percent']:>6.2f}% {r['step_ms']:>9.1f}"
        print(f"{row} {r['peak_mb']:>9.1f} {ratio:>7.2f}")
    read_ratio = results["read"]["peak_mb"] / full_peak
    print(
        f"READ peak memory / full: {read_ratio:.2f}x (target <= 0.6x): "
        f"{'PASS' if read_ratio <= 0.6 else 'MISS'}"
    )
    print(f"generation, batch {args.gen_batch}, beams 4, {args.summary_tokens} new tokens per summary:")
    for name in ("full", "read"):
        r = results[name]
        cache = "with KV cache" if r["kv_cache"] else "without KV cache"
        print(
            f"  {name:<5} {r['tokens_per_s']:>8.1f} tokens/s "
            f"({r['gen_tokens']} tokens in {r['gen_s']:.2f} s, {cache})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
