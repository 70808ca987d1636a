"""Q9: what does the Shapes oracle read a pattern from: the texture, or the colour it leaves?

A pattern mixes a second colour into the shape (stripes and checks half of it, dots about a
quarter), so even with the texture gone the shape's average colour tells some patterns apart.
This scores the oracle's pattern accuracy on real test images, as they are and with their
texture removed in three ways: resized to 64 px (Stage-I's size) and back to 256 px, the same
through 32 px, and a 9x9 box blur. If accuracy stays high without the texture, a generator can
score there by drawing the right tint, which Stage-I can (it is a colour); the texture is then
needed only for the patterns whose tints agree.

    python experiments/q9_pattern_cues.py --samples 500
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from common import ensure_data, parse_args, pattern_scores, save, through

from stackgan.data.folder import load_folder
from stackgan.data.problems import InputErrors
from stackgan.data.shapes import PATTERNS, parse_caption
from stackgan.metrics.shapes_oracle import load_shapes_oracle

SIZE = 256


def box_blur(images: torch.Tensor, k: int = 9) -> torch.Tensor:
    return F.avg_pool2d(F.pad(images, (k // 2,) * 4, mode="replicate"), k, stride=1)


VIEWS = {"as is": lambda x: x, "via 64 px": lambda x: through(x, 64), "via 32 px": lambda x: through(x, 32),
         "9x9 box blur": box_blur}


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], steps=0)
    ensure_data(args)
    examples = load_folder(args.data_dir, "test", InputErrors("raise"))[:args.samples]
    images = torch.stack([torch.from_numpy(np.array(Image.open(e.image_path).convert("RGB").resize((SIZE, SIZE))))
                          .permute(2, 0, 1).float() / 255 for e in examples])
    # the first caption of a Shapes image names all six attributes
    targets = torch.tensor([PATTERNS.index(parse_caption(e.captions[0])["pattern"]) for e in examples])
    oracle = load_shapes_oracle()
    views = {}
    for name, view in VIEWS.items():
        with torch.no_grad():
            predicted = oracle.classify(oracle(view(images)))["pattern"].argmax(1)
        views[name] = pattern_scores(predicted, targets)
        print(name, round(views[name]["pattern"], 3), views[name]["confusion"])
    save(args, "q9_pattern_cues", {"patterns": list(PATTERNS), "images": len(examples), "views": views})


if __name__ == "__main__":
    main()
