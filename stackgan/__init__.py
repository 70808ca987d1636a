"""StackGAN: text-to-image generation with stacked GANs (Zhang et al., ICCV 2017)."""

from .config import StackGANConfig
from .ema import ExponentialMovingAverage
from .models import (ConditioningAugmentation, Stage1Discriminator, Stage1Generator, Stage2Discriminator,
                     Stage2Generator)
from .pipeline import StackGANModel, StackGANOutput, StackGANPipeline

__all__ = [
    "StackGANConfig", "ExponentialMovingAverage", "ConditioningAugmentation", "Stage1Generator",
    "Stage1Discriminator", "Stage2Generator", "Stage2Discriminator", "StackGANModel", "StackGANOutput",
    "StackGANPipeline",
]
