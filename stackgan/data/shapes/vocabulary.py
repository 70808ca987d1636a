"""The Shapes vocabulary (DESIGN.md §5), its colours, and how attributes are drawn at random.

Keep these words: captions from any source stay in vocabulary, and the Shapes oracle metric
checks generated images against them.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "heart", "diamond", "hexagon", "cross")
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "white", "black")
SIZES = ("small", "medium", "large")
POSITIONS = (
    "center", "top", "bottom", "left", "right", "top left", "top right", "bottom left", "bottom right",
)
PATTERNS = ("plain", "striped", "dotted", "checkered")
BACKGROUNDS = ("white", "black", "gray", "light blue", "beige", "dark green")

# The six labels every image keeps, in this order.
ATTRIBUTE_KEYS = ("shape", "color", "size", "position", "pattern", "background")
VOCABULARY = dict(zip(ATTRIBUTE_KEYS, (SHAPES, COLORS, SIZES, POSITIONS, PATTERNS, BACKGROUNDS)))

# (shape, color) pairs that never appear in train or test: every shape and every colour still
# appears with other partners, so a model can only draw these by composing what it learnt.
HELD_OUT_PAIRS = [
    ("circle", "purple"),
    ("square", "orange"),
    ("triangle", "pink"),
    ("star", "brown"),
    ("heart", "green"),
    ("diamond", "yellow"),
    ("hexagon", "red"),
    ("cross", "blue"),
]

COLOR_RGB = {
    "red": (220, 30, 35),
    "orange": (245, 135, 20),
    "yellow": (245, 215, 30),
    "green": (40, 165, 60),
    "blue": (30, 80, 215),
    "purple": (125, 45, 175),
    "pink": (245, 125, 185),
    "brown": (120, 70, 30),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
BACKGROUND_RGB = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "light blue": (170, 210, 240),
    "beige": (235, 225, 195),
    "dark green": (20, 75, 40),
}
# Object colours never drawn on a background: the same colour (DESIGN §5), plus pairs too close
# to tell apart at 64x64.
BACKGROUND_CLASHES = {
    "white": {"white"},
    "black": {"black"},
    "gray": set(),
    "light blue": {"white"},
    "beige": {"white", "yellow"},
    "dark green": {"green", "black"},
}


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def sample_attributes(rng: np.random.Generator, held_out: bool = False) -> dict[str, str]:
    """Draw one image's six attribute labels.

    Args:
        rng: the source of randomness (a numpy Generator), so that a seed fixes the result.
        held_out: draw (shape, color) from `HELD_OUT_PAIRS` instead of from every other pair.
    """
    if held_out:
        shape, color = _pick(rng, HELD_OUT_PAIRS)
    else:
        shape, color = _pick(rng, SHAPES), _pick(rng, COLORS)
        while (shape, color) in HELD_OUT_PAIRS:
            shape, color = _pick(rng, SHAPES), _pick(rng, COLORS)
    backgrounds = [b for b in BACKGROUNDS if color not in BACKGROUND_CLASHES[b]]
    return {
        "shape": shape,
        "color": color,
        "size": _pick(rng, SIZES),
        "position": _pick(rng, POSITIONS),
        "pattern": _pick(rng, PATTERNS),
        "background": _pick(rng, backgrounds),
    }
