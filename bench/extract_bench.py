"""Benchmark `readcli extract`: does decoding overlap with encoding, and is memory flat in video length?

On a generated 720p video (150 s; 30 s with --quick) it times, in one run and with one loaded model:
  decode-only  the decode thread's work alone (decord + CLIP preprocessing of every clip's frame),
  encode-only  CLIP ViT-B-32 on as many preprocessed frames, in the same batches,
  extract      the pipeline (decode thread + encoding + writing the files),
and reports extract / (decode + encode): 1.0 means no overlap at all, lower is better (target <= 1.0).
Then, in fresh processes, the peak resident memory while extracting the 150 s video and a 1200 s one
(240 s with --quick), sampled every 20 ms (target: ratio <= 1.2).

    .venv/bin/python bench/extract_bench.py [--quick] [--device cpu|cuda] [--workdir DIR]
        [--clip-weights PATH]

On CUDA the memory figures are still the host's resident memory (decoding is on the CPU either way).

Without --clip-weights it uses random ViT-B-32 weights (speed and memory do not depend on them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def make_video(path: Path, seconds: int) -> Path:
    """A 1280x720, 30 fps H.264 (x264 veryfast: B-frames, CABAC, keyframes every 250 frames) test video."""
    if path.is_file() and path.stat().st_size > 0:
        return path
    tmp = path.with_suffix(".part.mp4")
    subprocess.run(
        [_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(tmp)],
        check=True,
    )  # fmt: skip
    tmp.replace(path)
    return path


def random_weights(path: Path) -> Path:
    if path.is_file():
        return path
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


class RssSampler:
    """Peak resident set size of this process, sampled from /proc every `period` seconds."""

    def __init__(self, period: float = 0.02) -> None:
        self.period, self.peak, self._stop = period, 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.period)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def overlap(video: Path, weights: Path, batch_size: int, repeats: int, device: str) -> dict[str, float]:
    import torch

    from readcli.features.clip_encoder import ClipEncoder
    from readcli.features.extractor import decode_stream
    from readcli.features.video import open_video
    from readcli.pipelines.extract import ExtractRequest, run

    encoder = ClipEncoder.load("ViT-B-32", str(weights), device=device)
    n_clips = open_video(video, clip_len=2.0).plan.n_clips
    pixels = torch.randn(batch_size, 3, 224, 224)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def decode_only() -> None:
        for _ in decode_stream([video], clip_len=2.0, batch_size=batch_size, preprocess=encoder.preprocess):
            pass

    def encode_only() -> None:
        for start in range(0, n_clips, batch_size):
            encoder.encode_images(pixels[: min(batch_size, n_clips - start)])
        sync()

    def extract() -> None:
        with tempfile.TemporaryDirectory() as out:
            request = ExtractRequest((str(video),), Path(out), batch_size=batch_size, device=device)
            result = run(request, encoder=encoder)
            assert result.ok, result.outcomes

    encode_only()  # warm-up: first forward passes allocate
    times = {"decode": math.inf, "encode": math.inf, "extract": math.inf}
    for _ in range(repeats):  # interleaved, best of `repeats`: the machine is shared
        times["decode"] = min(times["decode"], _timed(decode_only))
        times["encode"] = min(times["encode"], _timed(encode_only))
        times["extract"] = min(times["extract"], _timed(extract))
    times["clips"] = n_clips
    times["ratio"] = times["extract"] / (times["decode"] + times["encode"])
    return times


def memory_child(video: Path, weights: Path, batch_size: int, device: str) -> None:
    """Run in a fresh process: load the model, then extract `video` while sampling RSS."""
    from readcli.features.clip_encoder import ClipEncoder
    from readcli.pipelines.extract import ExtractRequest, run

    encoder = ClipEncoder.load("ViT-B-32", str(weights), device=device)
    with tempfile.TemporaryDirectory() as out:
        sampler = RssSampler()
        before = sampler.rss()
        with sampler:
            request = ExtractRequest((str(video),), Path(out), batch_size=batch_size, device=device)
            result = run(request, encoder=encoder)
        assert result.ok, result.outcomes
    print(json.dumps({"before_mib": before / 2**20, "peak_mib": sampler.peak / 2**20}))


def memory(video: Path, weights: Path, batch_size: int, device: str) -> dict[str, float]:
    child = [sys.executable, __file__, "--memory-child", str(video), str(weights), str(batch_size), device]
    output = subprocess.run(child, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="30 s and 240 s videos instead of 150 s and 1200 s"
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "readcli-extract-bench")
    parser.add_argument("--clip-weights", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] for the CLIP encoder")
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        video, weights, batch, device = args.memory_child
        memory_child(Path(video), Path(weights), int(batch), device)
        return
    short, long = (30, 240) if args.quick else (150, 1200)
    args.workdir.mkdir(parents=True, exist_ok=True)
    weights = args.clip_weights or random_weights(args.workdir / "vit-b-32-random.safetensors")
    videos = {s: make_video(args.workdir / f"testsrc2-720p-{s}s.mp4", s) for s in (short, long)}
    t = overlap(videos[short], weights, args.batch_size, args.repeats, args.device)
    print(f"{short} s 720p, {t['clips']:.0f} clips, batch {args.batch_size}, device {args.device}:")
    print(
        f"  decode-only {t['decode']:.2f} s   encode-only {t['encode']:.2f} s   extract {t['extract']:.2f} s"
    )
    print(f"  extract / (decode + encode) = {t['ratio']:.2f}  (target <= 1.0)")
    m = {s: memory(v, weights, args.batch_size, args.device) for s, v in videos.items()}
    for s in (short, long):
        print(
            f"  {s:5d} s: RSS before extraction {m[s]['before_mib']:.0f} MiB, peak {m[s]['peak_mib']:.0f} MiB"
        )
    ratio = m[long]["peak_mib"] / m[short]["peak_mib"]
    growth = (m[long]["peak_mib"] - m[long]["before_mib"]) - (m[short]["peak_mib"] - m[short]["before_mib"])
    print(
        f"  peak memory {long} s / {short} s = {ratio:.3f}  (target <= 1.2); extra growth {growth:+.0f} MiB"
    )
    print(json.dumps({"overlap": t, "memory": {str(k): v for k, v in m.items()}, "memory_ratio": ratio}))


if __name__ == "__main__":
    main()
