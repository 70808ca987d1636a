"""Inference fast path: BatchNorm folded into the preceding layer, up-block kernels precomputed.

In eval mode BN is a per-channel affine map, y = gamma * (x - mean) / sqrt(var + eps) + beta, so it
can be merged into the weights and bias of the layer before it, saving one pass over every
activation. The 2x2 phase kernels of the up blocks are derived once instead of in every forward.
Up blocks whose input is smaller than PHASE_MIN_SIZE keep the literal upsample + 3x3 conv: there
four tiny 2x2 convolutions cost more than one 3x3 (measured in benchmarks/bench_generation.py).
The copies keep their weights in channels_last memory format (measured 3-6% faster on the CPU,
benchmarks/bench_generation.py). The result equals the training-time network up to float
rounding. Training keeps BN.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .models import UpBlock, phase_kernels_2x2

PHASE_MIN_SIZE = 16


@torch.no_grad()
def fold_into(layer: nn.Conv2d | nn.Linear, bn: nn.BatchNorm1d | nn.BatchNorm2d, repeat: int = 1) -> None:
    """Merge eval-mode `bn` into `layer` in place. `repeat`: layer outputs per BN channel (4 before a
    PixelShuffle(2), whose sub-pixel channels are consecutive)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    scale, shift = scale.repeat_interleave(repeat), shift.repeat_interleave(repeat)
    layer.weight.mul_(scale.view(-1, *([1] * (layer.weight.dim() - 1))))
    bias = shift if layer.bias is None else layer.bias * scale + shift
    layer.bias = nn.Parameter(bias)


@torch.no_grad()
def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An eval-mode inference copy of `module`: every BN merged into the layer before it, up-block
    kernels precomputed."""
    module = copy.deepcopy(module).eval()
    for m in list(module.modules()):
        if isinstance(m, UpBlock):
            fold_into(m.conv, m.bn, 4 if m.upsample == "pixelshuffle" else 1)
            m.bn = nn.Identity()
            if m.upsample == "nearest" and m.phase_convolution:
                m.baked_kernels = phase_kernels_2x2(m.conv.weight)
                m.phase_min_size = PHASE_MIN_SIZE
        elif isinstance(m, nn.Sequential):
            for i in range(1, len(m)):
                if isinstance(m[i], (nn.BatchNorm1d, nn.BatchNorm2d)) and isinstance(m[i - 1], (nn.Conv2d, nn.Linear)):
                    fold_into(m[i - 1], m[i])
                    m[i] = nn.Identity()
    return module.to(memory_format=torch.channels_last)
