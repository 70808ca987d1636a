"""Conversions between image tensors in [-1, 1] and PIL images, and sample grids."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] -> B RGB images (rounded, not truncated, to uint8)."""
    array = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(a) for a in array.permute(0, 2, 3, 1).numpy()]


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> (3, H, W) float32 in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1.0


def make_grid(rows: list[list[Image.Image]], cell: int | None = None, padding: int = 2,
              background: tuple = (255, 255, 255)) -> Image.Image:
    """Lay rows of images out in a grid of square cells of `cell` px (default: the largest image).

    Smaller images are enlarged with nearest-neighbour resampling, so a 64 px Stage-I image shows
    its real pixels next to a 256 px Stage-II image instead of a smoothed guess.
    """
    if not rows or not any(rows):
        raise ValueError("make_grid needs at least one image")
    cell = cell or max(max(im.size) for row in rows for im in row)
    columns = max(len(row) for row in rows)
    grid = Image.new("RGB", (columns * (cell + padding) + padding, len(rows) * (cell + padding) + padding), background)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            if image.size != (cell, cell):
                image = image.resize((cell, cell), Image.NEAREST)
            grid.paste(image, (padding + c * (cell + padding), padding + r * (cell + padding)))
    return grid
