"""Q3 of the guide: nearest-neighbour upsampling + conv versus PixelShuffle, with and without ICNR.

    python experiments/q3_pixelshuffle.py

1. At initialisation: one Stage-I generator of each kind draws from the same inputs; without
   ICNR the sub-pixel kernels start unrelated, so the image is a checkerboard.
2. Three Stage-I runs of the README's recipe that differ only in `--upsample` / `--icnr`, scored
   by train/evaluate.py (oracle accuracy, domain FID), with early samples.
3. Cost: parameters and a Stage-I forward pass (batch 16, one thread, median of 7).
Writes docs/figures/q3_*.png and experiments/results/q3_pixelshuffle.json.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image

from common import (ATTRIBUTES, RECIPE, ensure_data, figure, parse_args, save, stack, train_and_evaluate,
                    write_figure)
from stackgan import StackGANConfig, Stage1Generator
from stackgan.images import make_grid, to_pil

VARIANTS = {"nearest": ["--upsample", "nearest"],
            "pixelshuffle_icnr": ["--upsample", "pixelshuffle"],
            "pixelshuffle_plain": ["--upsample", "pixelshuffle", "--icnr", "false"]}


def generators(preset: str) -> dict[str, Stage1Generator]:
    out = {}
    for name, flags in VARIANTS.items():
        torch.manual_seed(0)  # the same draws for every kind
        out[name] = Stage1Generator(StackGANConfig.from_preset(
            preset, upsample=flags[1], icnr=flags[-1] != "false")).eval()
    return out


def checkerboard(image: torch.Tensor) -> float:
    """Mean |difference| between neighbouring pixels over that between pixels two apart. A smooth
    image changes less over one pixel than over two (ratio below 1); a pattern that alternates
    every pixel, as PixelShuffle's four sub-pixel kernels draw when they disagree, the opposite."""
    x = image.float()
    one = (x[..., 1:] - x[..., :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    two = (x[..., 2:] - x[..., :-2]).abs().mean() + (x[..., 2:, :] - x[..., :-2, :]).abs().mean()
    return float(one / two)


def crop_rows(grid: Image.Image, rows: int, cell: int = 64, padding: int = 2) -> Image.Image:
    """The top `rows` rows of a make_grid image."""
    return grid.crop((0, 0, grid.width, padding + rows * (cell + padding)))


def speed(g: Stage1Generator, config: StackGANConfig) -> float:
    torch.set_num_threads(1)
    e, z = torch.randn(16, config.text_dim), torch.randn(16, config.z_dim)
    times = []
    with torch.no_grad():
        for _ in range(9):
            start = time.perf_counter()
            g(e, z)
            times.append(time.perf_counter() - start)
    return float(np.median(times[2:]) * 1000)


def main():
    args = parse_args(__doc__.splitlines()[0], steps=1000)
    ensure_data(args)
    preset = "tiny" if args.smoke else "shapes"
    config = StackGANConfig.from_preset(preset)
    torch.manual_seed(1)
    e, z = torch.randn(4, config.text_dim), torch.randn(4, config.z_dim)
    at_init, cost = {}, {}
    rows = []
    for name, g in generators(preset).items():
        with torch.no_grad():
            images, _, _ = g(e, z, torch.zeros(4, config.condition_dim))
        # stretch each image's contrast: untrained generators draw faint images
        stretched = [(im - im.min()) / (im.max() - im.min() + 1e-8) * 2 - 1 for im in images]
        rows.append(to_pil(torch.stack(stretched)))
        at_init[name] = round(float(np.mean([checkerboard(im) for im in images])), 2)
        cost[name] = {"parameters": sum(p.numel() for p in g.parameters()),
                      "forward_ms_batch16_1thread": round(speed(g, config), 1)}
    make_grid(rows, cell=128).save(f"{args.figures}/q3_at_init.png")

    early = 100 if args.steps >= 200 else args.steps
    results = train_and_evaluate(args, {f"q3_{k}": RECIPE + v for k, v in VARIANTS.items()}, validation_steps=early)
    # the first two validation captions of each run: enough to see the pattern, and a small file
    early_rows = [crop_rows(Image.open(f"{args.work_dir}/{name}/samples/step-{early:07d}.png"), 2)
                  for name in results]
    stack(early_rows, horizontal=False).save(f"{args.figures}/q3_early_samples.png")

    fig, (accuracy, fid) = figure(columns=2)
    x = np.arange(len(ATTRIBUTES))
    for i, (name, r) in enumerate(results.items()):
        accuracy.bar(x + (i - 1) * 0.27, [r["accuracy"][k] for k in ATTRIBUTES], 0.27,
                     label=name.replace("q3_", "").replace("_", " "))
    accuracy.set_xticks(x, ATTRIBUTES, fontsize=8)
    accuracy.set_title(f"Stage-I after {args.steps} steps ({args.samples} test captions)", fontsize=9)
    accuracy.legend(fontsize=8)
    fid.bar(range(len(results)), [r["oracle_fid"] for r in results.values()])
    fid.set_xticks(range(len(results)), [n.replace("q3_", "").replace("_", "\n") for n in results], fontsize=8)
    fid.set_title("domain FID (Shapes oracle features; lower is better)", fontsize=9)
    write_figure(fig, args, "q3_pixelshuffle.png")
    save(args, "q3_pixelshuffle", {
        "steps": args.steps, "checkerboard_ratio_at_init": at_init, "cost": cost,
        "runs": results})


if __name__ == "__main__":
    main()
