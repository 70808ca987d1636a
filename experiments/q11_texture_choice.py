"""Q11: does Stage-II's texture follow the caption, and who can read it?

A Stage-II generator with `g_texture` draws its detail from textures gated by the caption (through
its CA's condition) and by its features. Two readings of a trained one:

- the gates: for captions that differ only in the pattern word, the gates' logits from the
  caption (`gate_text(mu)`); their spread across the four words, averaged over textures, is 0 when
  the caption does not choose a texture (the gates start so) and grows as it does;
- the images: for full test captions, Stage-II's images are scored by an image-text matcher
  (`--matcher`, the one the run trained against) among the four captions that differ only in the
  pattern, and by the Shapes oracle. A matcher that reads the pattern far more often than the
  oracle does was met with textures of its own, not the dataset's.

    python experiments/q11_texture_choice.py --model runs/s16/T8/checkpoint-250/pipeline --matcher runs/s15/d1 \
        --samples 96 --results /tmp/q11
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from common import ROOT, ensure_data, parse_args, save

sys.path.insert(0, str(ROOT / "train"))
from probe_discriminator import full_caption, one_attribute_variants, picked, real_shapes  # noqa: E402

from stackgan import StackGANPipeline  # noqa: E402
from stackgan.data.shapes import PATTERNS  # noqa: E402
from stackgan.matcher import ImageTextMatcher  # noqa: E402
from stackgan.metrics.fid import images_to_tensor  # noqa: E402
from stackgan.metrics.shapes_oracle import load_shapes_oracle  # noqa: E402

# (shape, colour, background) of the gate reading's captions: large, centred, one per row.
GATE_SUBJECTS = (("star", "red", "white"), ("square", "blue", "white"), ("circle", "green", "black"),
                 ("hexagon", "yellow", "gray"))


@torch.no_grad()
def gate_spread(pipe) -> dict:
    """Per subject, the gates' logits from the caption for each pattern word, and their mean spread."""
    texture = pipe.model.stage2.texture
    rows, spreads = {}, []
    for shape, color, background in GATE_SUBJECTS:
        captions = [full_caption({"shape": shape, "color": color, "size": "large", "position": "center",
                                  "pattern": p, "background": background}) for p in PATTERNS]
        _, mu, _ = pipe.model.stage2.ca(pipe.encode(captions)[0])
        logits = texture.gate_text(mu)                         # (4 patterns, textures)
        spreads.append(logits.std(0).mean().item())
        rows[f"{color} {shape}"] = {p: [round(v, 3) for v in row.tolist()] for p, row in zip(PATTERNS, logits)}
    return {"mean_spread": round(float(np.mean(spreads)), 4), "logits": rows}


@torch.no_grad()
def pattern_readings(pipe, matcher, data_dir, count: int) -> dict:
    """The matcher's and the oracle's pattern accuracy on Stage-II images of `count` full test captions."""
    _, attributes = real_shapes(data_dir, "test", count, 64)
    out = pipe([full_caption(a) for a in attributes], seed=3)
    images = images_to_tensor([row[0] for row in out.stage2])
    truth = torch.tensor([PATTERNS.index(a["pattern"]) for a in attributes])
    oracle = load_shapes_oracle()
    result = {"captions": len(attributes),
              "oracle": round((oracle.classify(oracle(images))["pattern"].argmax(1) == truth).float().mean().item(), 4)}
    if matcher is not None:
        visual = matcher.embed_images(images * 2 - 1)
        for key, n, captions, true in one_attribute_variants(attributes):
            text = matcher.embed_text(torch.as_tensor(pipe.text_encoder.encode(captions))).view(len(attributes), n, -1)
            result[f"matcher_{key}"] = round(picked((text * visual[:, None]).sum(-1), true), 4)
    return result


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], steps=0,
                      extra=lambda p: (p.add_argument("--model", required=True,
                                                      help="a two-stage model whose Stage-II has g_texture"),
                                       p.add_argument("--matcher", default=None, help="matcher folder to read with")))
    ensure_data(args)
    pipe = StackGANPipeline.from_pretrained(args.model)
    if pipe.model.stage2 is None or pipe.model.stage2.texture is None:
        sys.exit(f"{args.model} has no Stage-II textures (train with --stage 2 --g_texture true)")
    matcher = ImageTextMatcher.from_pretrained(args.matcher) if args.matcher else None
    results = {"model": args.model, "matcher": args.matcher, "gates": gate_spread(pipe),
               "images": pattern_readings(pipe, matcher, args.data_dir, args.samples)}
    print({"gate_spread": results["gates"]["mean_spread"], **results["images"]})
    save(args, "q11_texture_choice", results)


if __name__ == "__main__":
    main()
