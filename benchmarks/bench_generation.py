"""Generation latency, plain path and fast paths in the same run, as JSON.

    python benchmarks/bench_generation.py --presets cub shapes --batch-sizes 1 16 --runs 7
    python benchmarks/bench_generation.py --presets cub --variants plain fast-contiguous fast fast+compile

Variants of the generator networks:
- plain: the paper's literal network (nearest upsample then 3x3 conv, BatchNorm as a layer).
- fast: what StackGANPipeline runs (stackgan.fast.fold_batchnorm: 2x2 phase convolutions, BatchNorm
  folded into the convolutions, weights in channels_last memory format).
- fast-contiguous: the same with the weights back in the default (contiguous) memory format, to
  measure what channels_last adds.
- fast+compile: "fast" through torch.compile (inductor; the compile time is reported separately).

Rows "stage1" and "stage2_incl_stage1" time the networks on ready embeddings; row "caption_to_images"
times StackGANPipeline end to end (MiniLM text encoding with its cache off, noise, both stages,
conversion to PIL images) at the preset's widths with text_dim 384, the fast path only.
Each figure is the median of --runs timed calls after --warmup untimed ones, under
torch.inference_mode on the CPU, with the thread count, the paper-layout FLOP count (2 per
multiply-add, counted by torch.utils.flop_counter on the plain network) and the achieved GFLOP/s
(that count over the measured time).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from stackgan import StackGANConfig, StackGANModel, StackGANPipeline, Stage1Generator, Stage2Generator
from stackgan.fast import fold_batchnorm
from stackgan.models import set_phase_convolution

VARIANTS = ("plain", "fast-contiguous", "fast", "fast+compile")


def median_seconds(fn, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def networks(plain: list, variant: str) -> tuple[list, float]:
    """(Stage-I, Stage-II) for `variant`, and the seconds spent preparing them."""
    start = time.perf_counter()
    if variant == "plain":
        return plain, 0.0
    nets = [fold_batchnorm(set_phase_convolution(copy.deepcopy(g), True)) for g in plain]
    if variant == "fast-contiguous":
        nets = [g.to(memory_format=torch.contiguous_format) for g in nets]
    elif variant == "fast+compile":
        nets = [torch.compile(g) for g in nets]
    return nets, time.perf_counter() - start


def bench_networks(preset: str, batch: int, runs: int, warmup: int, text_dim: int, variants: list[str]) -> list[dict]:
    config = StackGANConfig.from_preset(preset, text_dim=text_dim)
    torch.manual_seed(0)
    plain = [set_phase_convolution(G(config).eval(), False) for G in (Stage1Generator, Stage2Generator)]
    e, z = torch.randn(batch, config.text_dim), torch.randn(batch, config.z_dim)
    rows = []
    with torch.inference_mode():
        counts = {}
        for variant in variants:
            (stage1, stage2), prepare_s = networks(plain, variant)
            for what in ("stage1", "stage2_incl_stage1"):
                def run():
                    image = stage1(e, z)[0]
                    return image if what == "stage1" else stage2(image, e)[0]

                if what not in counts:
                    counts[what] = flops(lambda: plain[0](e, z)[0] if what == "stage1" else
                                         plain[1](plain[0](e, z)[0], e)[0])
                first = time.perf_counter()
                run()  # the first call carries torch.compile's compilation
                first = time.perf_counter() - first
                seconds = median_seconds(run, runs, warmup)
                row = dict(preset=preset, what=what, path=variant, batch=batch,
                           median_ms=round(seconds * 1e3, 2), ms_per_image=round(seconds * 1e3 / batch, 2),
                           gflop=round(counts[what] / 1e9, 2), gflop_per_s=round(counts[what] / seconds / 1e9, 1))
                if variant == "fast+compile":
                    row["first_call_s"] = round(first + prepare_s, 1)
                rows.append(row)
    return rows


def bench_end_to_end(preset: str, batch: int, runs: int, warmup: int) -> dict:
    """Caption -> PIL images through StackGANPipeline, text encoding included (cache off)."""
    from stackgan.text import TextEncoder

    encoder = TextEncoder(cache_size=0)
    config = StackGANConfig.from_preset(preset, text_dim=encoder.dim, text_encoder=encoder.model_id)
    torch.manual_seed(0)
    pipe = StackGANPipeline(StackGANModel(config.to_dict(), stages=2), text_encoder=encoder)
    captions = [f"a {size} red star on a white background number {i}" for i, size in
                zip(range(batch), ["small", "medium", "large"] * batch)]
    seconds = median_seconds(lambda: pipe(captions, seed=0, batch_size=batch), runs, warmup)
    encode_s = median_seconds(lambda: encoder.encode(captions), runs, warmup)
    return dict(preset=preset, what="caption_to_images", path="fast", batch=batch, text_dim=encoder.dim,
                median_ms=round(seconds * 1e3, 2), ms_per_image=round(seconds * 1e3 / batch, 2),
                text_encoding_ms=round(encode_s * 1e3, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["cub", "shapes"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=["plain", "fast"])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--text-dim", type=int, default=1024, help="1024 = the official char-CNN-RNN size")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the caption_to_images rows")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for preset in args.presets:
        for batch in args.batch_sizes:
            results += bench_networks(preset, batch, args.runs, args.warmup, args.text_dim, args.variants)
            if not args.no_end_to_end:
                results.append(bench_end_to_end(preset, batch, args.runs, args.warmup))
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
