"""READ's trainable parameters on BART-base and T5-base sized models, next to the paper's figures.

Builds the text models from configs (random init, nothing downloaded; only the text model is
counted: the vision-guided fusion head is counted in docs/summarization.md), injects READ
for several bottlenecks k, and prints trainable, total and share, the k whose count is nearest the
paper's (1.17 M on VG-BART, 1.91 M on VG-T5), and the other methods at their defaults. With
--fingerprint it also times the frozen-weights fingerprint of a materialised bart-base.

    python bench/param_counts.py [--fingerprint]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from readcli.adapters.accounting import count_parameters, format_millions
from readcli.adapters.inject import inject
from readcli.adapters.registry import METHODS
from readcli.adapters.settings import MethodSettings, method_settings

PAPER = {
    "bart-base": (1_170_000, 0.47),
    "t5-base": (1_910_000, 0.57),
}  # Tables 4 and 5: READ, trainable / share
KS = (8, 16, 32, 48, 64, 96, 128)


def bart_base() -> Any:
    from transformers import BartConfig, BartForConditionalGeneration

    config = BartConfig(
        vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
        decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072, max_position_embeddings=1024,
    )  # fmt: skip
    return BartForConditionalGeneration(config)


def t5_base() -> Any:
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
    return T5ForConditionalGeneration(config)


BUILDERS: dict[str, Callable[[], Any]] = {"bart-base": bart_base, "t5-base": t5_base}


def count(name: str, settings: MethodSettings) -> tuple[int, int]:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = BUILDERS[name]()
    report = inject(model, settings)
    return report.count.trainable, report.count.total


def nearest_k(name: str, target: int) -> int:
    """The k whose READ count is nearest `target` (counts grow with k: bisect, compare the neighbours)."""
    low, high = 1, 1024
    while high - low > 1:
        middle = (low + high) // 2
        if count(name, method_settings("read", bottleneck=middle))[0] < target:
            low = middle
        else:
            high = middle
    return min((low, high), key=lambda k: abs(count(name, method_settings("read", bottleneck=k))[0] - target))


def read_table(name: str) -> None:
    target, share = PAPER[name]
    with torch.device("meta"):
        base = count_parameters(BUILDERS[name]()).total
    print(f"\n{name}: {base:,} parameters before injection (text model only)")
    print("| k | READ-RNN trainable | share | READ-GRU trainable | READ-LSTM trainable |")
    print("| --- | --- | --- | --- | --- |")
    for k in KS:
        rnn, total = count(name, method_settings("read", bottleneck=k))
        gru, _ = count(name, method_settings("read", bottleneck=k, rnn="gru"))
        lstm, _ = count(name, method_settings("read", bottleneck=k, rnn="lstm"))
        cells = [
            format_millions(rnn),
            f"{100 * rnn / total:.2f} %",
            format_millions(gru),
            format_millions(lstm),
        ]
        print(f"| {k} | {' | '.join(cells)} |")
    best = nearest_k(name, target)
    trainable, total = count(name, method_settings("read", bottleneck=best))
    print(
        f"paper: {format_millions(target)} / {share:.2f} %; nearest k = {best}: {format_millions(trainable)} "
        f"({trainable:,}) / {100 * trainable / total:.2f} % of the text model; the paper's share implies "
        f"a total of {target / share * 100 / 1e6:.0f} M parameters"
    )


def methods_table(name: str) -> None:
    print(f"\n{name}, every method at its defaults (k = default_bottleneck(d), LoRA r = 8 on q/v):")
    print("| method | trainable | share |")
    print("| --- | --- | --- |")
    for method in METHODS:
        try:
            trainable, total = count(name, method_settings(method))
        except Exception as err:  # e.g. prompt on a stock model, bias on T5
            print(f"| {method} | n/a ({type(err).__name__}: {str(err)[:60]}...) | |")
            continue
        print(f"| {method} | {format_millions(trainable)} | {100 * trainable / total:.2f} % |")


def time_fingerprint() -> None:
    from readcli.adapters.fingerprint import compute_fingerprint, fingerprint, frozen_tensors

    torch.manual_seed(0)
    model = bart_base()
    inject(model, method_settings("read", bottleneck=64))
    frozen = frozen_tensors(model, [p for p in model.parameters() if p.requires_grad])
    size = sum(t.numel() * t.element_size() for t in frozen.values())
    print(f"\nfingerprint of bart-base's frozen weights: {len(frozen)} tensors, {size / 2**20:.0f} MiB")
    for workers in (1, 2):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            compute_fingerprint(frozen, workers=workers)
            times.append(time.perf_counter() - start)
        print(f"  blake2b, {workers} thread(s), best of 3: {min(times):.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["READCLI_CACHE"] = os.path.join(tmp, "cache")
        source = os.path.join(tmp, "bart-base.safetensors")
        with open(source, "wb") as handle:
            handle.write(b"stand-in for the checkpoint file")
        for label in ("first load (hashes, fills the cache)", "next load (cache hit)"):
            start = time.perf_counter()
            fingerprint(frozen, source=source)
            print(f"  with source=, {label}: {time.perf_counter() - start:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fingerprint", action="store_true", help="also time the fingerprint on bart-base")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    for name in BUILDERS:
        read_table(name)
        methods_table(name)
    if args.fingerprint:
        time_fingerprint()


if __name__ == "__main__":
    main()
