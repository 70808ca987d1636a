"""Q14: how close does a model draw the tint a caption's pattern implies?

q12 showed that the pattern bar is the tint's: the drawn object in its palette colour with the
pattern pasted on reads 90.5%, the right tint alone 84%. At 64 px a pattern is a tint (a dotted
light colour is 11% darker than a plain one, a striped or checkered one 22%), so this measures
how far the drawn tint is from the real one. For the first (full) caption of each of the first
`--samples` test images, the mean colour of the drawn object's inside (pixels far from the named
background, one pixel in from the edge) is compared with the same measure on the real image at
the stage's size (area-resized); the error is the mean absolute difference over R, G, B as a
fraction of the 0-255 range, reported per pattern and stage.

    python experiments/q14_tint_precision.py --samples 300
    python experiments/q14_tint_precision.py --model runs/shapes-stage2 --samples 300
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from common import ROOT, ensure_data, object_mask, parse_args, save

from stackgan import StackGANPipeline
from stackgan.data.folder import load_folder
from stackgan.data.problems import InputErrors
from stackgan.data.shapes import PATTERNS, parse_caption

# A pixel belongs to the object when its RGB differs from the background's by more than this
# (sum of absolute differences, 0-765); the edge's blend stays out.
OBJECT_THRESHOLD = 90


def inside_colour(image: np.ndarray, background: str) -> np.ndarray | None:
    """Mean RGB (0-255) of the object's inside: object pixels whose four neighbours are object too;
    None when fewer than 4 such pixels."""
    mask = object_mask(image, background, OBJECT_THRESHOLD)[..., 0] > 0
    inner = np.zeros_like(mask)
    inner[1:-1, 1:-1] = (mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1]
                         & mask[1:-1, :-2] & mask[1:-1, 2:])
    return image[inner].mean(axis=0) if inner.sum() >= 4 else None


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], steps=0,
                      extra=lambda p: p.add_argument("--model", default=str(ROOT / "demo" / "pretrained" / "shapes")))
    ensure_data(args)
    pipe = StackGANPipeline.from_pretrained(args.model)
    examples = load_folder(args.data_dir, "test", InputErrors("raise"))[:args.samples]
    captions = [e.captions[0] for e in examples]
    named = [parse_caption(c) for c in captions]
    out = pipe(captions, seed=0)
    stages = {"stage1": out.stage1, "stage2": out.stage2} if out.stage2 is not None else {"stage1": out.stage1}
    results = {"model": args.model, "captions": len(captions), "stages": {}}
    for stage, images in stages.items():
        errors = {p: [] for p in PATTERNS}
        for example, attributes, drawn in zip(examples, named, images):
            size = drawn[0].size
            real = np.asarray(Image.open(example.image_path).convert("RGB").resize(size, Image.BOX), dtype=np.float32)
            a = inside_colour(real, attributes["background"])
            b = inside_colour(np.asarray(drawn[0].convert("RGB"), dtype=np.float32), attributes["background"])
            if a is not None and b is not None:
                errors[attributes["pattern"]].append(float(np.abs(a - b).mean() / 255))
        results["stages"][stage] = {p: {"count": len(v), "mean": float(np.mean(v)) if v else None,
                                        "median": float(np.median(v)) if v else None}
                                    for p, v in errors.items()}
        for p, row in results["stages"][stage].items():
            print(stage, p, row, flush=True)
    save(args, "q14_tint_precision", results)


if __name__ == "__main__":
    main()
