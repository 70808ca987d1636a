"""Q10: does the generator vary what a caption leaves open, and from which noise?

Evaluation's diversity ratio is one number. This splits it by attribute: for test captions that
name two or three attributes, several images each, the Shapes oracle reads every attribute the
caption does not name, and the entropy (nats) of those readings is compared with that of real
images showing the caption's attributes (the others drawn at random, as `evaluate.py` renders
them). Three ways to draw the images (`StackGANPipeline(vary=...)`): z and CA's noise both (the
default), z alone, CA's noise alone. A G that takes its variety from z keeps the second near the
first; one that ignores z draws near copies there.

    python experiments/q10_open_attributes.py                        # the bundled model, Stage-I
    python experiments/q10_open_attributes.py --model runs/shapes-stage1 --samples 40
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from common import ROOT, ensure_data, parse_args, save

sys.path.insert(0, str(ROOT / "train"))
from evaluate import render_matching  # noqa: E402

from stackgan import StackGANPipeline  # noqa: E402
from stackgan.data.folder import load_folder  # noqa: E402
from stackgan.data.problems import InputErrors  # noqa: E402
from stackgan.data.shapes import ATTRIBUTE_KEYS, VOCABULARY, parse_caption  # noqa: E402
from stackgan.metrics.fid import images_to_tensor  # noqa: E402
from stackgan.metrics.shapes_oracle import load_shapes_oracle  # noqa: E402

DRAWS = {"both": "z and CA's noise", "noise": "z alone", "conditioning": "CA's noise alone"}


def open_captions(data_dir, count: int, rng) -> list[str]:
    """`count` test captions that name two or three of the six attributes."""
    captions = [c for e in load_folder(data_dir, "test", InputErrors()) for c in e.captions
                if 2 <= len(parse_caption(c)) <= 3]
    return [captions[i] for i in rng.choice(len(captions), min(count, len(captions)), replace=False)]


@torch.no_grad()
def readings(oracle, images) -> dict[str, np.ndarray]:
    logits = oracle.classify(oracle(images_to_tensor(images)))
    return {key: value.argmax(1).numpy() for key, value in logits.items()}


def entropy(values: np.ndarray, classes: int) -> float:
    p = np.bincount(values, minlength=classes) / len(values)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def open_entropies(groups: list[tuple[dict, dict]]) -> dict:
    """{attribute: (mean entropy over the captions that leave it open, how many)} of
    (named attributes, oracle readings) pairs."""
    result = {}
    for key in ATTRIBUTE_KEYS:
        values = [entropy(read[key], len(VOCABULARY[key])) for named, read in groups if key not in named]
        if values:
            result[key] = {"entropy": round(float(np.mean(values)), 3), "captions": len(values)}
    return result


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], steps=0,
                      extra=lambda p: (p.add_argument("--model", default=None, help="default: the bundled model"),
                                       p.add_argument("--images", type=int, default=8, help="per caption"),
                                       p.add_argument("--stage", type=int, choices=(1, 2), default=1)))
    if args.smoke:
        args.samples, args.images = 4, 2
    ensure_data(args)
    pipe = StackGANPipeline.from_pretrained(args.model) if args.model else StackGANPipeline.from_pretrained()
    if args.stage == 2 and pipe.model.stage2 is None:
        sys.exit(f"{args.model} has no Stage-II generator")
    oracle = load_shapes_oracle()
    rng = np.random.default_rng(0)
    captions = open_captions(args.data_dir, args.samples, rng)
    named = [parse_caption(c) for c in captions]
    results = {"model": args.model or "bundled", "stage": args.stage, "captions": len(captions),
               "images_per_caption": args.images,
               "real": open_entropies([(n, readings(oracle, render_matching(n, args.images, rng))) for n in named])}
    for vary, label in DRAWS.items():
        groups = []
        for i, (caption, n) in enumerate(zip(captions, named)):
            out = pipe(caption, num_images_per_prompt=args.images, seed=i, vary=vary)
            groups.append((n, readings(oracle, (out.stage2 if args.stage == 2 else out.stage1)[0])))
        results[vary] = {"draws": label, **open_entropies(groups)}
        print(vary, results[vary], flush=True)
    save(args, f"q10_open_attributes_stage{args.stage}", results)


if __name__ == "__main__":
    main()
