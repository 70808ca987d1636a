"""Q12: how much of the pattern bar can texture alone reach on a model's own drawings?

Every Stage-II run so far left the oracle's pattern reading near Stage-I's, and q8 showed that
even the oracle's own gradient barely moves it. This asks what the best possible texture would
score: the model's Stage-II images for test captions that name a pattern and a background, read
by the oracle as drawn and with the dataset's own pattern (stripes, dots or checks at their
periods, in the colour's darker or lighter shade, `stackgan.data.shapes.drawing`) pasted onto the
drawn object (the pixels far from the caption's background colour). Two more views take the
drawn object's own surface out of the question: the object flattened to its median colour, and
that flat object with the pattern pasted. Those two keep the drawing's colour, which Stage-I
tints towards its pattern's average (a dotted object a quarter of the way to its shade), so the
paste puts the shade on a colour already part-shaded; the last view first recolours the object
to the nearest palette colour (outline and soft edge kept), as the dataset draws it. A control
pastes the patterns the same way onto real plain shapes, so a low score on the model's images
is the drawing's fault, not the paste's.

If the oracle reads the recoloured, pasted drawings well, the outline does not cap the pattern:
the colour under the texture and the texture are what the model needs. The same drawings
shrunk to 64 px and back say how far the right tint alone, without a texture, would go.

    python experiments/q12_pattern_ceiling.py --samples 200
    python experiments/q12_pattern_ceiling.py --model runs/shapes-stage2 --samples 200
"""

from __future__ import annotations

import numpy as np
import torch

from common import ROOT, ensure_data, object_mask, parse_args, pattern_scores, save, through

from stackgan import StackGANPipeline
from stackgan.data.folder import load_folder
from stackgan.data.problems import InputErrors
from stackgan.data.shapes import PATTERNS, parse_caption
from stackgan.data.shapes.drawing import STRIPE_DIRECTIONS, _pattern_mask, render, shade
from stackgan.data.shapes.vocabulary import BACKGROUND_RGB, COLOR_RGB, sample_attributes
from stackgan.metrics.shapes_oracle import load_shapes_oracle

SIZE = 256


def paste(image: np.ndarray, mask: np.ndarray, pattern: str, rng: np.random.Generator) -> np.ndarray:
    """The dataset's `pattern` in the shade of each pixel's own colour, inside `mask`, at a random
    phase and stripe direction; a plain pattern leaves the image as it is."""
    if pattern == "plain":
        return image
    tile = np.asarray(_pattern_mask(pattern, int(rng.integers(len(STRIPE_DIRECTIONS))), SIZE, 1),
                      dtype=np.float32)[..., None] / 255
    x, y = rng.integers(0, tile.shape[1] - SIZE), rng.integers(0, tile.shape[0] - SIZE)
    return image + (shade(image).astype(np.float32) - image) * tile[y:y + SIZE, x:x + SIZE] * mask


def flatten(image: np.ndarray, mask: np.ndarray, background: str) -> np.ndarray:
    """The object in its median colour on the exact background: no surface detail, hard edges."""
    inside = mask[..., 0] > 0
    colour = np.median(image[inside], axis=0) if inside.any() else np.array(BACKGROUND_RGB[background])
    return np.array(BACKGROUND_RGB[background], dtype=np.float32) * (1 - mask) + colour * mask


def recolour(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The object in the palette colour nearest its median, keeping the drawn outline and its soft
    edge: a drawing tinted towards its pattern's average colour (how Stage-I shows a pattern) made
    the colour the dataset draws the pattern on."""
    inside = mask[..., 0] > 0
    if not inside.any():
        return image
    palette = np.array(list(COLOR_RGB.values()), dtype=np.float32)
    base = palette[np.abs(palette - np.median(image[inside], axis=0)).sum(-1).argmin()]
    return image * (1 - mask) + base * mask


def read_patterns(oracle, images: list[np.ndarray], targets: torch.Tensor) -> dict:
    x = torch.tensor(np.stack(images) / 255, dtype=torch.float32).permute(0, 3, 1, 2)
    with torch.no_grad():
        predicted = torch.cat([oracle.classify(oracle(x[i:i + 50]))["pattern"].argmax(1)
                               for i in range(0, len(x), 50)])
    return pattern_scores(predicted, targets)


def control(oracle, count: int, rng: np.random.Generator) -> dict:
    """Real plain shapes (rendered), each pattern pasted by `paste` onto a quarter of them."""
    images, targets = [], []
    for i in range(count):
        attributes = {**sample_attributes(rng), "pattern": "plain"}
        image = np.asarray(render(attributes, SIZE, rng), dtype=np.float32)
        pattern = PATTERNS[i % len(PATTERNS)]
        images.append(paste(image, object_mask(image, attributes["background"]), pattern, rng))
        targets.append(PATTERNS.index(pattern))
    return read_patterns(oracle, images, torch.tensor(targets))


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], steps=0,
                      extra=lambda p: p.add_argument("--model", default=str(ROOT / "demo" / "pretrained" / "shapes")))
    ensure_data(args)
    pipe = StackGANPipeline.from_pretrained(args.model)
    if pipe.model.stage2 is None:
        raise SystemExit(f"{args.model} has no Stage-II generator")
    oracle = load_shapes_oracle()
    captions = [c for e in load_folder(args.data_dir, "test", InputErrors("raise")) for c in e.captions
                if {"pattern", "background"} <= set(parse_caption(c))][:args.samples]
    named = [parse_caption(c) for c in captions]
    targets = torch.tensor([PATTERNS.index(n["pattern"]) for n in named])
    drawn = [np.asarray(im[0].resize((SIZE, SIZE)), dtype=np.float32) for im in pipe(captions, seed=0).stage2]
    rng = np.random.default_rng(0)
    masks = [object_mask(im, n["background"]) for im, n in zip(drawn, named)]
    flat = [flatten(im, m, n["background"]) for im, m, n in zip(drawn, masks, named)]
    views = {
        "as drawn": drawn,
        "pattern pasted": [paste(im, m, n["pattern"], rng) for im, m, n in zip(drawn, masks, named)],
        "flat object": flat,
        "flat object, pattern pasted": [paste(im, m, n["pattern"], rng) for im, m, n in zip(flat, masks, named)],
        "recoloured, pattern pasted": [paste(recolour(im, m), m, n["pattern"], rng)
                                       for im, m, n in zip(drawn, masks, named)],
    }
    # The right tint without the texture: what Stage-II would score drawing its 64 px average.
    pasted = torch.tensor(np.stack(views["recoloured, pattern pasted"])).permute(0, 3, 1, 2)
    views["recoloured, pattern pasted, through 64 px"] = list(through(pasted, 64).permute(0, 2, 3, 1).numpy())
    result = {name: read_patterns(oracle, images, targets) for name, images in views.items()}
    result["control: real plain shapes, pattern pasted"] = control(oracle, len(captions), rng)
    for name, scores in result.items():
        print(f"{name}: {scores['pattern']:.3f} {scores['confusion']}")
    save(args, "q12_pattern_ceiling", {"model": args.model, "patterns": list(PATTERNS), "captions": len(captions),
                                       "views": result})


if __name__ == "__main__":
    main()
