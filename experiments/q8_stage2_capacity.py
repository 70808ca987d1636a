"""Q8: can the Stage-II generator draw Shapes' patterns at all, if told exactly what is wrong?

Stage-II's pattern accuracy has stayed at Stage-I's (~37%, chance 25%) through every Stage-II run,
with a D that cannot read patterns (Q5, Q6) and with the image-text matcher's loss (README, "A
matcher for what D does not read"). This takes the training signal out of the question, as Q6 did
for D: the bundled model's Stage-II generator is fine-tuned alone (no D, no GAN) on the Shapes
oracle's pattern cross-entropy for training captions that name a pattern, and tested on test
captions. A diagnostic, not a training method: the oracle is the evaluation's judge, so the loss
and the score share it and the accuracy is an upper bound on what G can express, not a result.
If G cannot reach a high score even so, its architecture (no noise below 16x16, nearest
upsampling) is what stops it; if it can, its teachers are.

    python experiments/q8_stage2_capacity.py                 # 300 steps, batch 16, lr 4e-4
    python experiments/q8_stage2_capacity.py --texture       # + a texture source (below)
    python experiments/q8_stage2_capacity.py --every_block   # + the condition in every up block
    python experiments/q8_stage2_capacity.py --stage 1       # Stage-I's generator instead (64 px)
    python experiments/q8_stage2_capacity.py --texture --matcher runs/matcher   # a matcher as teacher

`--texture` rebuilds the generator with `g_texture=True` (models.TextureSynthesis: periodic
textures of the pixel position at a random phase, gated by the caption and G's features and
coloured per pixel from those features; the colour starts at zero, so step 0 draws the bundle's
images, and grows from the textures' mean, which any request for another tint pulls on).
`--every_block` gives it the caption at every resolution: the same generator rebuilt
with `g_conditioning="every_block"` (conditional BN in each up block, its new maps zero at the
start, so step 0 draws the bundle's images); the bundle's Stage-II reads the caption only at 16x16.
`--matcher FOLDER` swaps the teacher: the loss is that image-text matcher's InfoNCE (as
`train.py --matcher` adds it to G's), each image against its caption, 1,024 random training
captions and the 16 nearest its own (`NearestCaptions`), among the 4,000 training captions that
name a pattern. Unlike the oracle, a matcher is a method: it learns from captions, not labels.
Earlier `--texture` arms (README, q8 table) used earlier versions of the module: sinusoids of
fixed periods mixed into the last feature map, then textures with a fixed colour each.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import torch
import torch.nn.functional as F

from common import ROOT, ensure_data, parse_args, pattern_scores, save

from stackgan import StackGANPipeline
from stackgan.data.folder import load_folder, metadata_path
from stackgan.data.problems import InputErrors
from stackgan.data.shapes import PATTERNS, parse_caption
from stackgan.matcher import ImageTextMatcher, NearestCaptions
from stackgan.metrics.shapes_oracle import load_shapes_oracle
from stackgan.models import Stage2Generator, added_by_flags


def pattern_captions(data_dir, split: str, limit: int) -> tuple[list[str], torch.Tensor]:
    """Up to `limit` captions of a split that name a pattern, and that pattern's index."""
    examples = load_folder(data_dir, split, InputErrors("raise"))
    captions, targets = [], []
    for example in examples:
        for caption in example.captions:
            pattern = parse_caption(caption).get("pattern")
            if pattern is not None:
                captions.append(caption)
                targets.append(PATTERNS.index(pattern))
        if len(captions) >= limit:
            break
    if not captions:
        raise ValueError(f"no caption of {metadata_path(data_dir, split)} names a pattern")
    return captions[:limit], torch.tensor(targets[:limit])


def draw(pipe, embedding: torch.Tensor, seed: int, stage: int = 2) -> torch.Tensor:
    """Images in [0, 1] for standardised embeddings: Stage-II's (B, 3, 256, 256) with Stage-I
    frozen, or with stage=1 Stage-I's (B, 3, 64, 64)."""
    model, generator = pipe.model, torch.Generator().manual_seed(seed)
    z = torch.randn(len(embedding), model.config.z_dim, generator=generator)
    eps = torch.randn(2, len(embedding), model.config.condition_dim, generator=generator)
    with torch.set_grad_enabled(stage == 1 and torch.is_grad_enabled()):
        image, _, _ = model.stage1(embedding, z, eps[0])
    if stage == 2:
        image, _, _ = model.stage2(image, embedding, eps[1])
    return (image + 1) / 2


def accuracy(pipe, oracle, embedding, targets, seed: int = 12345, stage: int = 2) -> dict:
    generator = getattr(pipe.model, f"stage{stage}").eval()
    with torch.no_grad():
        logits = oracle.classify(oracle(draw(pipe, embedding, seed, stage)))
    generator.train()
    return pattern_scores(logits["pattern"].argmax(1), targets)


def oracle_loss(oracle, targets: torch.Tensor):
    """(images in [0, 1], caption rows, step) -> the oracle's pattern cross-entropy."""
    return lambda images, rows, step: F.cross_entropy(oracle.classify(oracle(images))["pattern"], targets[rows])


def matcher_loss(matcher: ImageTextMatcher, raw: torch.Tensor, negatives: int = 1024, hard: int = 16):
    """(images in [0, 1], caption rows, step) -> the matcher's InfoNCE against the captions,
    `negatives` random pool captions and each caption's `hard` nearest (raw embeddings `raw`)."""
    nearest = NearestCaptions(raw.numpy(), matcher.embedding_mean, matcher.embedding_std)

    def loss(images, rows, step):
        pool = torch.randint(len(raw), (negatives,), generator=torch.Generator().manual_seed(step))
        return matcher.loss(images * 2 - 1, raw[rows], raw[pool], nearest(raw[rows], hard))
    return loss


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], steps=300,
                      extra=lambda p: (p.add_argument("--model", default=str(ROOT / "demo" / "pretrained" / "shapes")),
                                       p.add_argument("--learning_rate", type=float, default=4e-4),
                                       p.add_argument("--batch_size", type=int, default=16),
                                       p.add_argument("--every", type=int, default=50),
                                       p.add_argument("--stage", type=int, choices=(1, 2), default=2),
                                       p.add_argument("--texture", action="store_true"),
                                       p.add_argument("--every_block", action="store_true"),
                                       p.add_argument("--condition_mean", action="store_true",
                                                      help="c = mu: the generator's CA without sampling"),
                                       p.add_argument("--matcher", default=None,
                                                      help="teach with this matcher's loss, not the oracle's")))
    if args.stage == 1 and (args.texture or args.every_block):
        sys.exit("--texture and --every_block rebuild the Stage-II generator; drop them with --stage 1")
    ensure_data(args)
    torch.manual_seed(0)
    pipe = StackGANPipeline.from_pretrained(args.model)
    if pipe.model.stage2 is None:
        sys.exit(f"{args.model} has no Stage-II generator")
    oracle = load_shapes_oracle()
    train_captions, train_targets = pattern_captions(args.data_dir, "train", 4000)
    test_captions, test_targets = pattern_captions(args.data_dir, "test", args.samples)
    train_embedding, _ = pipe.encode(train_captions)
    loss_of = oracle_loss(oracle, train_targets)
    if args.matcher:  # the matcher standardises captions itself: hand it the raw embeddings
        raw = train_embedding * pipe.model.text_std + pipe.model.text_mean
        loss_of = matcher_loss(ImageTextMatcher.from_pretrained(args.matcher), raw.cpu())
    test_embedding, _ = pipe.encode(test_captions)
    if args.every_block or args.texture:
        options = {"g_conditioning": "every_block"} if args.every_block else {}
        rebuilt = Stage2Generator(dataclasses.replace(pipe.model.config, g_texture=args.texture, **options))
        missing, unexpected = rebuilt.load_state_dict(pipe.model.stage2.state_dict(), strict=False)
        if unexpected or set(missing) - set(added_by_flags(rebuilt, pipe.model.stage2.state_dict())):
            raise RuntimeError(f"rebuild: missing {missing}, unexpected {unexpected}")
        pipe.model.stage2 = rebuilt
    generator = getattr(pipe.model, f"stage{args.stage}").train()
    generator.ca.sample = not args.condition_mean
    parameters = list(generator.parameters())
    optimizer = torch.optim.Adam(parameters, lr=args.learning_rate, betas=(0.5, 0.999))
    order = torch.Generator().manual_seed(0)
    curve = [{"step": 0, **accuracy(pipe, oracle, test_embedding, test_targets, stage=args.stage)}]
    print(curve[-1])
    for step in range(1, args.steps + 1):
        rows = torch.randint(len(train_captions), (args.batch_size,), generator=order)
        loss = loss_of(draw(pipe, train_embedding[rows], step, args.stage), rows, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % args.every == 0 or step == args.steps:
            curve.append({"step": step, "loss": loss.item(),
                          **accuracy(pipe, oracle, test_embedding, test_targets, stage=args.stage)})
            print(json.dumps(curve[-1]))
    save(args, "q8_stage2_capacity" + ("_stage1" if args.stage == 1 else "") + ("_texture" if args.texture else "")
         + ("_every_block" if args.every_block else "") + ("_matcher" if args.matcher else "")
         + ("_condition_mean" if args.condition_mean else ""),
         {"model": args.model, "teacher": args.matcher or "oracle", "stage": args.stage, "texture": args.texture,
          "every_block": args.every_block, "condition_mean": args.condition_mean, "learning_rate": args.learning_rate,
          "batch_size": args.batch_size, "test_captions": len(test_captions), "curve": curve})


if __name__ == "__main__":
    main()
