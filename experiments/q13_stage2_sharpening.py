"""Q13: can Stage-II learn to place an edge at 256 px?

Each variant is a fresh Stage-II generator (`shapes` preset, `stage2_image_skip`: it starts as the
bilinear upsampler) trained alone to sharpen real Shapes images: the 64 px image (the 256 px one
area-shrunk, half of them also blurred by `stackgan.refinement.degrade`) in, the 256 px image as
the target. The caption is held fixed (a zero embedding, c = mu): this asks only whether the
network can draw edges where the input shows them. Reported: the loss over the last 50 steps as a
fraction of the bilinear upsampler's loss on the same batches (1.0: it learnt nothing).

Variants: the paper's network (the Stage-I image reaches the up blocks only through the 16x16
bottleneck) and `stage2_image_every_block` (each up block also reads it), each under L1 and under
squared error.

    python experiments/q13_stage2_sharpening.py             # 200 steps per variant, ~12 min on 2 cores
    python experiments/q13_stage2_sharpening.py --steps 600 --variants "paper, squared" "every block, squared"
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import ROOT, ensure_data, parse_args
from stackgan import StackGANConfig
from stackgan.data.folder import load_folder
from stackgan.data.preprocess import load_image
from stackgan.data.problems import InputErrors
from stackgan.models import Stage2Generator
from stackgan.refinement import degrade

VARIANTS = {"paper, L1": (False, "l1"), "paper, squared": (False, "mse"),
            "every block, L1": (True, "l1"), "every block, squared": (True, "mse")}


def batches(paths: list[Path], batch: int, steps: int, seed: int):
    """(64 px input, 256 px target) pairs in [-1, 1], the same sequence for every variant."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        picks = rng.choice(len(paths), size=batch, replace=False)
        # Stage-II's training view: the image at 304 px, its centre 256 px (stackgan.data.dataset)
        real = torch.stack([torch.from_numpy(load_image(paths[i], 304)[:, 24:280, 24:280].astype(np.float32))
                            for i in picks]) / 127.5 - 1
        small = degrade(F.interpolate(real, size=(64, 64), mode="area"), warp=0.0, blotch=0.0, generator=generator)
        yield small, real


def train_variant(every_block: bool, loss_name: str, args, paths) -> dict:
    preset = "tiny" if args.smoke else "shapes"
    config = StackGANConfig.from_preset(preset, stage2_image_skip=True, stage2_image_every_block=every_block,
                                        conditioning_augmentation=False)
    torch.manual_seed(0)
    g = Stage2Generator(config).train()
    opt = torch.optim.Adam(g.parameters(), lr=args.lr, betas=(0.5, 0.999))
    distance = F.l1_loss if loss_name == "l1" else F.mse_loss
    embedding = torch.zeros(args.batch, config.text_dim)
    ratios, started = [], time.time()
    for small, real in batches(paths, args.batch, args.steps, seed=1):
        out, _, _ = g(small, embedding)
        loss = distance(out, real)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            bilinear = distance(F.interpolate(small, size=real.shape[-2:], mode="bilinear", align_corners=False), real)
        ratios.append(loss.item() / bilinear.item())
    tail = ratios[-50:]
    return {"loss_over_bilinear_last_50": round(float(np.mean(tail)), 3),
            "loss_over_bilinear_first_10": round(float(np.mean(ratios[:10])), 3),
            "curve_every_25": [round(float(np.mean(ratios[i:i + 25])), 3) for i in range(0, len(ratios), 25)],
            "seconds": round(time.time() - started)}


def main() -> None:
    def extra(p):
        p.add_argument("--batch", type=int, default=16)
        p.add_argument("--lr", type=float, default=1e-3)
        p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parse_args(__doc__.splitlines()[0], steps=200, extra=extra)
    ensure_data(args)
    paths = [e.image_path for e in load_folder(args.data_dir, "train", InputErrors())]
    if args.smoke:
        args.batch = 2
    results = {}
    for name in args.variants:
        every_block, loss_name = VARIANTS[name]
        results[name] = train_variant(every_block, loss_name, args, paths)
        print(name, results[name], flush=True)
    suffix = '' if args.smoke or args.steps == 200 else f'_{args.steps}_steps'
    out = Path(args.results) / f"q13_stage2_sharpening{suffix}.json"
    out.write_text(json.dumps({"steps": args.steps, "batch": args.batch, "lr": args.lr, "variants": results},
                              indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
