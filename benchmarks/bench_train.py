"""Training-step time (D step + G step, the real train_step of train/train.py), printed as JSON.

    python benchmarks/bench_train.py --presets cub shapes --stages 1 2 --batch-size 16
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
        --mixed_precision no --dynamo_backend no benchmarks/bench_train.py --presets shapes

Median of --runs steps after --warmup, on random tensors (data loading is measured by
bench_data.py). Under N processes each process takes --batch-size images per step. Each row also
gives the step's FLOP count (2 per multiply-add, forward and backward, torch.utils.flop_counter on
the literal up blocks) and the achieved GFLOP/s. Training variants: --up-blocks (2x2 phase convs or
the literal upsample + 3x3), --adam (for-loop, foreach or fused Adam), --channels-last.
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
from torch.utils.flop_counter import FlopCounterMode

from stackgan import StackGANConfig, Stage1Discriminator, Stage1Generator, Stage2Discriminator, Stage2Generator
from stackgan.models import set_phase_convolution

spec = importlib.util.spec_from_file_location("train_script", Path(__file__).resolve().parent.parent / "train" / "train.py")
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)


def adam(params, lr: float, config, kind: str):
    options = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[kind]
    return torch.optim.Adam(params, lr=lr, betas=config.adam_betas, **options)


def bench(accelerator, preset: str, stage: int, batch: int, runs: int, warmup: int, text_dim: int,
          phase: bool, adam_kind: str = "default", channels_last: bool = False) -> dict:
    config = StackGANConfig.from_preset(preset, text_dim=text_dim)
    torch.manual_seed(0)
    frozen = None if stage == 1 else Stage1Generator(config).eval().requires_grad_(False).to(accelerator.device)
    generator = set_phase_convolution((Stage1Generator if stage == 1 else Stage2Generator)(config), phase)
    discriminator = (Stage1Discriminator if stage == 1 else Stage2Discriminator)(config)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    generator, discriminator = generator.to(memory_format=memory_format), discriminator.to(memory_format=memory_format)
    opt_g = adam(generator.parameters(), config.g_learning_rate, config, adam_kind)
    opt_d = adam(discriminator.parameters(), config.d_learning_rate, config, adam_kind)
    d_step = train.DiscriminatorStep(discriminator, config)
    generator, d_step, opt_g, opt_d = accelerator.prepare(generator, d_step, opt_g, opt_d)
    size = config.stage1_size if stage == 1 else config.stage2_size
    real = (torch.rand(batch, 3, size, size, device=accelerator.device) * 2 - 1).to(memory_format=memory_format)
    embedding = torch.randn(batch, config.text_dim, device=accelerator.device)
    step = lambda i: train.train_step(accelerator, config, generator, frozen, d_step, opt_g, opt_d, real, embedding,
                                      train.step_noise(0, i, accelerator.process_index, batch, config, 1))
    counter = FlopCounterMode(display=False)
    set_phase_convolution(generator, False)  # count the paper's layout, as bench_generation does
    with counter:
        step(warmup + runs)  # an extra step, outside the timed ones
    set_phase_convolution(generator, phase)
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times[warmup:])
    gflop = counter.get_total_flops() / 1e9
    return dict(preset=preset, stage=stage, up_blocks="phase 2x2" if phase else "upsample+3x3", adam=adam_kind,
                channels_last=channels_last, batch_per_process=batch, processes=accelerator.num_processes,
                median_step_s=round(seconds, 3), images_per_s=round(batch * accelerator.num_processes / seconds, 1),
                gflop_per_step=round(gflop, 1), gflop_per_s=round(gflop / seconds, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["cub", "shapes"])
    parser.add_argument("--stages", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--up-blocks", choices=("both", "phase", "plain"), default="both",
                        help="time the 2x2 phase convolutions, the literal upsample + 3x3 conv, or both")
    parser.add_argument("--adam", nargs="+", choices=("default", "foreach", "fused"), default=["default"])
    parser.add_argument("--channels-last", nargs="+", type=int, choices=(0, 1), default=[0],
                        help="0, 1 or both: time contiguous and/or channels_last tensors")
    parser.add_argument("--text-dim", type=int, default=None, help="default: 1024 for cub/coco, 384 otherwise")
    args = parser.parse_args()
    accelerator = Accelerator()
    phases = {"both": (False, True), "phase": (True,), "plain": (False,)}[args.up_blocks]
    results = [bench(accelerator, preset, stage, args.batch_size, args.runs, args.warmup,
                     args.text_dim or (1024 if preset in ("cub", "coco") else 384), phase, kind, bool(last))
               for preset in args.presets for stage in args.stages for phase in phases
               for kind in args.adam for last in args.channels_last]
    if accelerator.is_main_process:
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
