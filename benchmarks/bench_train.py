"""Training-step time (D step + G step, the real train_step of train/train.py), printed as JSON.

    python benchmarks/bench_train.py --presets cub shapes --stages 1 2 --batch-size 16
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
        --mixed_precision no --dynamo_backend no benchmarks/bench_train.py --presets shapes

Median of --runs steps after --warmup, on random tensors (data loading is measured by
bench_data.py). Under N processes each process takes --batch-size images per step.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path

import torch
from accelerate import Accelerator

from stackgan import StackGANConfig, Stage1Discriminator, Stage1Generator, Stage2Discriminator, Stage2Generator
from stackgan.models import set_phase_convolution

spec = importlib.util.spec_from_file_location("train_script", Path(__file__).resolve().parent.parent / "train" / "train.py")
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)


def bench(accelerator, preset: str, stage: int, batch: int, runs: int, warmup: int, text_dim: int,
          phase: bool) -> dict:
    config = StackGANConfig.from_preset(preset, text_dim=text_dim)
    torch.manual_seed(0)
    frozen = None if stage == 1 else Stage1Generator(config).eval().requires_grad_(False).to(accelerator.device)
    generator = set_phase_convolution((Stage1Generator if stage == 1 else Stage2Generator)(config), phase)
    discriminator = (Stage1Discriminator if stage == 1 else Stage2Discriminator)(config)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.g_learning_rate, betas=config.adam_betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.d_learning_rate, betas=config.adam_betas)
    d_step = train.DiscriminatorStep(discriminator, config)
    generator, d_step, opt_g, opt_d = accelerator.prepare(generator, d_step, opt_g, opt_d)
    size = config.stage1_size if stage == 1 else config.stage2_size
    real = torch.rand(batch, 3, size, size, device=accelerator.device) * 2 - 1
    embedding = torch.randn(batch, config.text_dim, device=accelerator.device)
    times = []
    for i in range(warmup + runs):
        noise = train.step_noise(0, i, accelerator.process_index, batch, config, 1)
        start = time.perf_counter()
        train.train_step(accelerator, config, generator, frozen, d_step, opt_g, opt_d, real, embedding, noise)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times[warmup:])
    return dict(preset=preset, stage=stage, up_blocks="phase 2x2" if phase else "upsample+3x3", batch_per_process=batch, processes=accelerator.num_processes,
                median_step_s=round(seconds, 3),
                images_per_s=round(batch * accelerator.num_processes / seconds, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["cub", "shapes"])
    parser.add_argument("--stages", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--up-blocks", choices=("both", "phase", "plain"), default="both",
                        help="time the 2x2 phase convolutions, the literal upsample + 3x3 conv, or both")
    parser.add_argument("--text-dim", type=int, default=None, help="default: 1024 for cub/coco, 384 otherwise")
    args = parser.parse_args()
    accelerator = Accelerator()
    phases = {"both": (False, True), "phase": (True,), "plain": (False,)}[args.up_blocks]
    results = [bench(accelerator, preset, stage, args.batch_size, args.runs, args.warmup,
                     args.text_dim or (1024 if preset in ("cub", "coco") else 384), phase)
               for preset in args.presets for stage in args.stages for phase in phases]
    if accelerator.is_main_process:
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
