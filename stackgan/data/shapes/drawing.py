"""Draw one Shapes image from its attribute labels, anti-aliased by supersampling."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from .vocabulary import BACKGROUND_RGB, COLOR_RGB

# Coverage masks are drawn at SUPERSAMPLE x the output size, then box-averaged down: smooth edges.
SUPERSAMPLE = 4
# Object radius as a fraction of the canvas.
SIZE_FRACTION = {"small": 0.13, "medium": 0.21, "large": 0.30}
# Unit offsets of each position on the 3x3 grid (x right, y down).
POSITION_OFFSET = {
    "center": (0, 0), "top": (0, -1), "bottom": (0, 1), "left": (-1, 0), "right": (1, 0),
    "top left": (-1, -1), "top right": (1, -1), "bottom left": (-1, 1), "bottom right": (1, 1),
}
MARGIN = 0.04  # gap between a shape at an edge position and the border, as a canvas fraction
# Pattern periods in output pixels at 256x256, about 2 px after the 256 -> 76 px Stage-I resize:
# Stage-I sees the colour, and Stage-II has to add the pattern (tested: 64 px keeps < 35% of the
# pattern's contrast).
STRIPE_PERIOD, CHECKER_CELL, DOT_PERIOD, DOT_RADIUS = 6, 4, 7, 1.9
STRIPE_DIRECTIONS = ((1.0, 0.0), (0.0, 1.0), (math.sqrt(0.5), math.sqrt(0.5)), (math.sqrt(0.5), -math.sqrt(0.5)))


def _fit(points):
    """Centre a polygon's bounding box on 0 and scale its larger half-extent to 1."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    half = max(max(xs) - min(xs), max(ys) - min(ys)) / 2
    return tuple(((x - cx) / half, (y - cy) / half) for x, y in points)


def _regular(count, start_degrees, radii=(1.0,)):
    step = 2 * math.pi / count / len(radii)
    start = math.radians(start_degrees)
    return [
        (radii[i % len(radii)] * math.cos(start + i * step), radii[i % len(radii)] * math.sin(start + i * step))
        for i in range(count * len(radii))
    ]


def _heart(samples=96):
    # The classic heart curve; y flipped because image y grows downward.
    points = []
    for i in range(samples):
        t = 2 * math.pi * i / samples
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        points.append((x, -y))
    return points


def _cross(arm=0.32):
    a = arm
    return [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)]


# Unit outlines (larger half-extent 1); the circle is drawn as an ellipse. The square is a bit
# smaller so that its area is close to the circle's.
OUTLINES = {
    "square": tuple((0.86 * x, 0.86 * y) for x, y in _fit([(-1, -1), (1, -1), (1, 1), (-1, 1)])),
    "triangle": _fit(_regular(3, -90)),
    "star": _fit(_regular(5, -90, radii=(1.0, 0.42))),
    "heart": _fit(_heart()),
    "diamond": _fit([(0, -1), (0.66, 0), (0, 1), (-0.66, 0)]),
    "hexagon": _fit(_regular(6, 0)),
    "cross": _fit(_cross()),
}


def shade(rgb):
    """The pattern's second colour: darker for light colours, lighter for dark ones, so the
    object keeps its named hue. `rgb`: one colour or an array of them (..., 3), 0-255; float64."""
    rgb = np.asarray(rgb, dtype=np.float64)
    light = (rgb @ np.array([0.299, 0.587, 0.114]))[..., None] > 90
    return np.where(light, rgb * 0.55, rgb + (255 - rgb) * 0.45)


@lru_cache(maxsize=64)
def _pattern_mask(pattern: str, variant: int, canvas: int, scale: int) -> Image.Image:
    """A tileable 0/255 mask of the pattern, one period larger than the canvas so that a random
    crop shifts its phase."""
    pad = int(math.ceil(max(STRIPE_PERIOD, 2 * CHECKER_CELL, DOT_PERIOD) * scale))
    coords = np.arange(canvas + pad, dtype=np.float32) / scale
    y, x = np.meshgrid(coords, coords, indexing="ij")
    if pattern == "striped":
        dx, dy = STRIPE_DIRECTIONS[variant % len(STRIPE_DIRECTIONS)]
        on = np.mod(x * dx + y * dy, STRIPE_PERIOD) < STRIPE_PERIOD / 2
    elif pattern == "checkered":
        on = (np.floor(x / CHECKER_CELL) + np.floor(y / CHECKER_CELL)) % 2 == 0
    elif pattern == "dotted":
        # Alternate rows are shifted half a period (a hexagonal dot grid).
        row = np.floor(y / DOT_PERIOD)
        fx = np.mod(x + (row % 2) * DOT_PERIOD / 2, DOT_PERIOD) - DOT_PERIOD / 2
        fy = np.mod(y, DOT_PERIOD) - DOT_PERIOD / 2
        on = fx * fx + fy * fy < DOT_RADIUS * DOT_RADIUS
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    return Image.fromarray(on.astype(np.uint8) * 255, mode="L")


def render(attributes: dict[str, str], size: int = 256, rng: np.random.Generator | None = None) -> Image.Image:
    """Draw one image.

    Args:
        attributes: the six labels (see `sample_attributes`).
        size: output width and height in pixels.
        rng: optional source of small variations (position and size jitter, pattern phase and
            stripe direction); without it the drawing is the canonical one.

    Returns:
        An RGB PIL image, ``size`` x ``size``.
    """
    scale = SUPERSAMPLE * size / 256  # supersampled pixels per 256-px output pixel
    jitter = rng.uniform(-1, 1, size=5) if rng is not None else np.zeros(5)
    fraction = SIZE_FRACTION[attributes["size"]] * (1 + 0.05 * jitter[0])
    ox, oy = POSITION_OFFSET[attributes["position"]]
    reach = 0.5 - SIZE_FRACTION[attributes["size"]] * 1.05 - MARGIN
    # Centre and radius in output pixels.
    cx = size * (0.5 + ox * reach + 0.015 * jitter[1])
    cy = size * (0.5 + oy * reach + 0.015 * jitter[2])
    radius = size * fraction

    # Only the object's bounding box is supersampled, and only as coverage masks: colours are
    # mixed afterwards at output resolution. Box-filtering is linear, so this equals drawing in
    # colour at the supersampled size, and it is what makes rendering fast (>= 500 images/s).
    x0, y0 = max(0, int(cx - radius) - 1), max(0, int(cy - radius) - 1)
    x1, y1 = min(size, int(cx + radius) + 2), min(size, int(cy + radius) + 2)
    box = ((x1 - x0) * SUPERSAMPLE, (y1 - y0) * SUPERSAMPLE)

    def local(x, y):
        return (x - x0) * SUPERSAMPLE, (y - y0) * SUPERSAMPLE

    mask = Image.new("L", box, 0)
    draw = ImageDraw.Draw(mask)
    shape = attributes["shape"]
    if shape == "circle":
        draw.ellipse(local(cx - radius, cy - radius) + local(cx + radius, cy + radius), fill=255)
    else:
        draw.polygon([local(cx + radius * x, cy + radius * y) for x, y in OUTLINES[shape]], fill=255)
    color = np.array(COLOR_RGB[attributes["color"]], dtype=np.float32)
    background = np.array(BACKGROUND_RGB[attributes["background"]], dtype=np.float32)
    # Fraction of each output pixel covered by the object (alpha) and by its pattern (beta).
    alpha = np.asarray(mask.reduce(SUPERSAMPLE), dtype=np.float32)[..., None] / 255
    patch = background + (color - background) * alpha

    pattern = attributes["pattern"]
    if pattern != "plain":
        canvas = size * SUPERSAMPLE
        variant = int(abs(jitter[3]) * 1000) % len(STRIPE_DIRECTIONS)
        tile = _pattern_mask(pattern, variant, canvas, int(round(scale)))
        # The tile is in whole-canvas coordinates, so the pattern's phase does not depend on
        # where the object sits; the random shift varies it between images.
        sx = int((jitter[4] + 1) / 2 * (tile.width - canvas)) + x0 * SUPERSAMPLE
        sy = int((jitter[4] + 1) / 2 * (tile.height - canvas)) + y0 * SUPERSAMPLE
        detail = ImageChops.multiply(mask, tile.crop((sx, sy, sx + box[0], sy + box[1])))
        beta = np.asarray(detail.reduce(SUPERSAMPLE), dtype=np.float32)[..., None] / 255
        patch += (np.floor(shade(COLOR_RGB[attributes["color"]])).astype(np.float32) - color) * beta

    image = Image.new("RGB", (size, size), tuple(int(c) for c in background))
    image.paste(Image.fromarray(np.rint(patch).astype(np.uint8), mode="RGB"), (x0, y0))
    return image
