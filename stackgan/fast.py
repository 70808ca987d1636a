"""Inference fast path: BatchNorm folded into the preceding convolution or linear layer.

In eval mode BN is a per-channel affine map, y = gamma * (x - mean) / sqrt(var + eps) + beta, so it
can be merged into the weights and bias of the layer before it, saving one pass over every
activation. The result equals the unfolded network up to float rounding. Training keeps BN.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .models import UpBlock


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
    """An eval-mode copy of `module` with every BN merged into the layer before it."""
    module = copy.deepcopy(module).eval()
    for m in list(module.modules()):
        if isinstance(m, UpBlock):
            fold_into(m.conv, m.bn, 4 if m.upsample == "pixelshuffle" else 1)
            m.bn = nn.Identity()
        elif isinstance(m, nn.Sequential):
            for i in range(1, len(m)):
                if isinstance(m[i], (nn.BatchNorm1d, nn.BatchNorm2d)) and isinstance(m[i - 1], (nn.Conv2d, nn.Linear)):
                    fold_into(m[i - 1], m[i])
                    m[i] = nn.Identity()
    return module
