"""Generation latency of the generators, plain path and fast path in the same run, as JSON.

    python benchmarks/bench_generation.py --presets cub shapes --batch-sizes 1 16 --runs 7

plain: the paper's literal network (nearest upsample then 3x3 conv, BatchNorm as a layer).
fast: what StackGANPipeline runs (2x2 phase convolutions, BatchNorm folded into the convolutions).
Each figure is the median of --runs timed forwards after --warmup untimed ones, under
torch.inference_mode on the CPU, with the thread count, the paper-layout FLOP count (2 per
multiply-add, counted by torch.utils.flop_counter on the plain path) and the achieved GFLOP/s
(that count over the measured time). Text encoding is not included here.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from stackgan import StackGANConfig, Stage1Generator, Stage2Generator
from stackgan.fast import fold_batchnorm
from stackgan.models import set_phase_convolution


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


def bench(preset: str, batch: int, runs: int, warmup: int, text_dim: int) -> list[dict]:
    config = StackGANConfig.from_preset(preset, text_dim=text_dim)
    torch.manual_seed(0)
    plain = [set_phase_convolution(G(config).eval(), False) for G in (Stage1Generator, Stage2Generator)]
    fast = [fold_batchnorm(set_phase_convolution(copy.deepcopy(g), True)) for g in plain]
    e, z = torch.randn(batch, config.text_dim), torch.randn(batch, config.z_dim)
    rows = []
    with torch.inference_mode():
        for what in ("stage1", "stage2_incl_stage1"):
            count = None
            for path, (stage1, stage2) in (("plain", plain), ("fast", fast)):
                def run():
                    image = stage1(e, z)[0]
                    return image if what == "stage1" else stage2(image, e)[0]

                count = count or flops(run)
                seconds = median_seconds(run, runs, warmup)
                rows.append(dict(preset=preset, what=what, path=path, batch=batch,
                                 median_ms=round(seconds * 1e3, 2), ms_per_image=round(seconds * 1e3 / batch, 2),
                                 gflop=round(count / 1e9, 2), gflop_per_s=round(count / seconds / 1e9, 1)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["cub", "shapes"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--text-dim", type=int, default=1024, help="1024 = the official char-CNN-RNN size")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [row for preset in args.presets for batch in args.batch_sizes
               for row in bench(preset, batch, args.runs, args.warmup, args.text_dim)]
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
