"""Shapes: a synthetic, captioned, deterministic dataset for tests, the demo and benchmarks.

Each 256x256 image shows one shape with six labelled attributes (DESIGN.md §5); captions name
all or some of them. ``python -m stackgan.data.shapes --out data/shapes --num-images 20000``
writes it in the captioned-folder format.
"""

from .captions import make_captions, parse_caption
from .drawing import render
from .export import generate, make_example
from .vocabulary import (
    ATTRIBUTE_KEYS,
    BACKGROUNDS,
    COLORS,
    HELD_OUT_PAIRS,
    PATTERNS,
    POSITIONS,
    SHAPES,
    SIZES,
    VOCABULARY,
    sample_attributes,
)

__all__ = [
    "ATTRIBUTE_KEYS", "BACKGROUNDS", "COLORS", "HELD_OUT_PAIRS", "PATTERNS", "POSITIONS", "SHAPES",
    "SIZES", "VOCABULARY", "generate", "make_captions", "make_example", "parse_caption", "render",
    "sample_attributes",
]
