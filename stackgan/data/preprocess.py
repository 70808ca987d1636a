"""Decode one image, crop it to its object box where there is one, and resize it for the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# Errors PIL raises for unreadable, truncated or hostile image files.
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def bbox_crop_box(bbox, width: int, height: int) -> tuple[int, int, int, int]:
    """The StackGAN crop for CUB: a square of 1.5x the box's larger side around its centre,
    clipped to the image (so near a border it is no longer square, as in the official code).

    Args:
        bbox: ``(x, y, box_width, box_height)`` in pixels, as in CUB's bounding_boxes.txt.
    """
    x, y, w, h = bbox
    half = 0.75 * max(w, h)
    cx, cy = x + w / 2, y + h / 2
    return (
        max(0, int(round(cx - half))),
        max(0, int(round(cy - half))),
        min(width, int(round(cx + half))),
        min(height, int(round(cy + half))),
    )


def load_image(path: Path, size: int, bbox=None) -> np.ndarray:
    """Read an image as a uint8 array (3, size, size), cropped to ``bbox`` first when given.

    Raises:
        OSError (and the others in IMAGE_ERRORS): the file is missing, corrupt or truncated.
    """
    with Image.open(path) as image:
        image.load()  # decode everything now, so a truncated file fails here
        image = image.convert("RGB")
    if bbox is not None:
        image = image.crop(bbox_crop_box(bbox, *image.size))
    # PIL's bilinear filter widens its support when shrinking, so downsizing is anti-aliased.
    image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image).transpose(2, 0, 1).copy()
