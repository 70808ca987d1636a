"""Exponential moving average of generator weights (Karras et al. 2018; Yazici et al. 2019).

GAN generators oscillate around a good solution instead of converging; averaging their weights
over time smooths that out, and the average is what gets published.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ExponentialMovingAverage:
    """Keeps `average = decay * average + (1 - decay) * weights` after every `update`.

    Buffers (BatchNorm running statistics) are copied, not averaged: they are statistics of the
    current weights' activations.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int | None) -> float:
        """The decay used at optimiser step `step` (1-based): min(decay, (1 + step) / (10 + step)),
        so early averages are not dominated by the random initial weights (with 0.999 they would
        be for the first few thousand steps). None: the constant decay."""
        return self.decay if step is None else min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        decay = self.decay_at(step)
        for average, current in zip(self.model.parameters(), model.parameters()):
            average.lerp_(current.detach(), 1.0 - decay)
        for average, current in zip(self.model.buffers(), model.buffers()):
            average.copy_(current)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
