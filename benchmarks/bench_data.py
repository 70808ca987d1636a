"""Data-path speed, printed as JSON: Shapes rendering, cache building, loader throughput from the
cache, and caption encoding.

    python benchmarks/bench_data.py --num-images 4000 --encode-captions 10000

- render: `render()` alone in one process, and `generate()` (render + PNG + metadata) with
  --workers processes, wall-clock and per CPU-second (see loader).
- cache: decoding the PNGs into the 76 px and 304 px uint8 caches.
- loader: a shuffled DataLoader over `build_dataset("shapes", ...)` at 64 and 256 px, batch 64,
  items with a wrong image (the paper's default), for each --loader-workers count. The caption
  embeddings here come from a random stand-in encoder: loader speed does not depend on them.
  img_per_s is wall-clock; img_per_cpu_s divides by the CPU time of this process and its workers,
  which other programs on a shared machine do not inflate: with 2 workers on 2 otherwise idle
  cores, expect up to about 2 x img_per_cpu_s.
- encode: TextEncoder (bundled MiniLM, LRU cache off) on --encode-captions distinct captions;
  the 100k figure is extrapolated linearly from that count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from stackgan.data import build_dataset
from stackgan.data.shapes import generate, make_captions, render, sample_attributes
from stackgan.text import TextEncoder


class RandomEncoder:
    """Stand-in encoder for the loader benchmark: a random 384-d vector per caption."""

    model_id, dim, max_tokens = "bench/random-384", 384, 256

    def encode(self, captions, return_truncation=False):
        embeddings = torch.randn(len(captions), self.dim)
        return (embeddings, [False] * len(captions)) if return_truncation else embeddings


def bench_render(count: int) -> float:
    rng = np.random.default_rng(0)
    attributes = [sample_attributes(rng) for _ in range(count)]
    start = time.perf_counter()
    for a in attributes:
        render(a, rng=rng)
    return count / (time.perf_counter() - start)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (DataLoader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_loader(dataset, workers: int, images: int, batch_size: int = 64) -> dict:
    # Whole epochs only, so that every worker has exited (and its CPU time is counted) at the end.
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True)
    seen, epoch = 0, 0
    wall, cpu = time.perf_counter(), cpu_seconds()
    while seen < images:
        dataset.set_epoch(epoch)
        for batch in loader:
            seen += len(batch["image"])
        epoch += 1
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {"img_per_s": round(seen / wall, 1), "img_per_cpu_s": round(seen / cpu, 1)}


def unique_captions(count: int) -> list[str]:
    rng = np.random.default_rng(1)
    captions: dict[str, None] = {}
    while len(captions) < count:
        for caption, _ in make_captions(sample_attributes(rng), rng):
            captions[caption] = None
    return list(captions)[:count]


def bench_encode(count: int) -> dict:
    captions = unique_captions(count)
    start = time.perf_counter()
    encoder = TextEncoder(cache_size=0)
    encoder.encode(captions[:8])  # load the model and warm up
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(0, count, 2048):
        encoder.encode(captions[i:i + 2048])
    seconds = time.perf_counter() - start
    return {"captions": count, "seconds": round(seconds, 1), "captions_per_s": round(count / seconds, 1),
            "seconds_per_100k_extrapolated": round(seconds * 100_000 / count, 1),
            "model_load_seconds": round(load_seconds, 1), "model": encoder.model_id,
            "note": f"100k figure extrapolated linearly from {count} distinct captions"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-images", type=int, default=4000, help="Shapes images to render and load")
    parser.add_argument("--workers", type=int, default=2, help="processes for rendering and cache building")
    parser.add_argument("--loader-workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--loader-images", type=int, nargs=2, default=[20000, 3000],
                        help="images to time at 64 px and at 256 px")
    parser.add_argument("--encode-captions", type=int, default=10000, help="0 skips the encoder benchmark")
    parser.add_argument("--out", default=None, help="where to write the data (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of this process")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    result = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
              "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        render_only = bench_render(min(args.num_images, 2000))
        cpu = cpu_seconds()
        summary = generate(out / "shapes", args.num_images, workers=args.workers, overwrite=True, progress=False)
        total = sum(summary["splits"].values())
        result["render"] = {
            "render_only_img_per_s_1_process": round(render_only, 1),
            "generate_img_per_s": round(summary["images_per_second"], 1),
            "generate_img_per_cpu_s": round(total / (cpu_seconds() - cpu), 1),
            "workers": args.workers,
        }
        result["cache_build_img_per_s"], result["loader"] = {}, []
        for resolution, images in zip((64, 256), args.loader_images):
            start = time.perf_counter()
            dataset = build_dataset("shapes", out / "shapes", resolution, RandomEncoder(), workers=args.workers)
            seconds = time.perf_counter() - start
            result["cache_build_img_per_s"][str(dataset.images.shape[-1])] = round(len(dataset) / seconds, 1)
            for workers in args.loader_workers:
                result["loader"].append({"resolution": resolution, "num_workers": workers, "batch_size": 64,
                                         "wrong_image": True, **bench_loader(dataset, workers, images)})
    if args.encode_captions:
        result["encode"] = bench_encode(args.encode_captions)
    result["load_average_at_end"] = os.getloadavg()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
