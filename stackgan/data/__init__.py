"""Datasets for StackGAN: Shapes (synthetic), captioned folders, CUB-200-2011, Oxford-102 and
COCO 2014, read into one cached training dataset.

    from stackgan.data import build_dataset
    from stackgan.text import TextEncoder
    train = build_dataset("shapes", "data/shapes", 64, TextEncoder())

Importing this package loads no model and reads no data.
"""

from .cache import load_size
from .dataset import DATASET_NAMES, StackGANDataset, build_dataset, load_examples
from .problems import InputErrors
from .records import Example

__all__ = ["DATASET_NAMES", "Example", "InputErrors", "StackGANDataset", "build_dataset", "load_examples", "load_size"]
