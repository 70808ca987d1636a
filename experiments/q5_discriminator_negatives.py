"""Q5: which mismatched captions teach a discriminator to read shape, position and pattern?

Trains the recipe's D alone (no generator) on real Shapes images with the matching-aware term
(real image + its caption vs real image + a mismatched caption) and the contrastive loss, once per
choice of negatives, then asks train/probe_discriminator.py which attributes it reads. Without a
generator in the loop, what D learns depends only on the losses and their negatives.

    python experiments/q5_discriminator_negatives.py              # Stage-I D, 2,000 steps per arm
    python experiments/q5_discriminator_negatives.py --stage 2 --steps 800

Arms: "shift" (a random other caption of the batch; StackGAN-Pytorch), "nearest_text"
(wrong_image="nearest_text"), "queue" (contrastive_queue=1024), and both with D's full-resolution
stem ("stem": d_stem=True, "stem_queue"); `--arms stem,stem_queue` runs a subset.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from common import ROOT, ensure_data, parse_args

sys.path.insert(0, str(ROOT / "train"))
from probe_discriminator import probe, real_shapes  # noqa: E402

from stackgan import StackGANConfig, StackGANModel, StackGANPipeline  # noqa: E402
from stackgan.data.dataset import build_dataset  # noqa: E402
from stackgan.losses import contrastive_loss, fake_loss, mismatched_logits, real_loss  # noqa: E402
from stackgan.models import Stage1Discriminator, Stage2Discriminator  # noqa: E402
from stackgan.text import TextEncoder  # noqa: E402

ARMS = {"shift": {}, "nearest_text": {"wrong_image": "nearest_text"}, "queue": {"contrastive_queue": 1024},
        "stem": {"d_stem": True}, "stem_queue": {"d_stem": True, "contrastive_queue": 1024}}


def extra_flags(parser):
    parser.add_argument("--stage", type=int, choices=(1, 2), default=1)
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")


def train_discriminator(config: StackGANConfig, dataset, steps: int, seed: int = 0):
    """D's matching-aware real/wrong terms + contrastive loss on real images only, Adam 4e-4."""
    torch.manual_seed(seed)
    network = Stage1Discriminator if dataset.resolution == config.stage1_size else Stage2Discriminator
    discriminator = network(config)
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=config.d_learning_rate, betas=config.adam_betas)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    mean, std = dataset.embedding_mean, dataset.embedding_std
    step = 0
    while step < steps:
        for batch in loader:
            embedding = (batch["embedding"] - mean) / std
            condition = discriminator.condition(embedding, None)
            features = discriminator.encode(batch["image"])
            wrong = mismatched_logits(config, discriminator, features, condition, embedding)
            loss = (real_loss(discriminator.logits(features, condition)) + fake_loss(wrong)
                    + config.contrastive_weight * contrastive_loss(discriminator.similarity(features, condition),
                                                                   config.contrastive_temperature))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            discriminator.enqueue(embedding)
            step += 1
            if step >= steps:
                break
    return discriminator


def main():
    args = parse_args(__doc__.split("\n")[0], steps=2000, extra=extra_flags)
    stage, arms = args.stage, args.arms.split(",")
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"--arms: unknown arm(s) {unknown}; choose from {list(ARMS)}")
    ensure_data(args)
    preset = "tiny" if args.smoke else "shapes"
    base = dict(d_matching="inner_product", d_text_input="projection", contrastive_weight=1.0, d_learning_rate=4e-4)
    if stage == 2 and not args.smoke:
        base.update(df_dim=16, batch_size=16)  # the README's Stage-II recipe
    if args.smoke:
        base.update(batch_size=4)
    size = 64 if stage == 1 else 256
    encoder = TextEncoder(StackGANConfig.from_preset(preset).text_encoder)
    dataset = build_dataset("shapes", args.data_dir, resolution=size, encoder=encoder, wrong_image="none", seed=0)
    images, attributes = real_shapes(args.data_dir, "test", 8 if args.smoke else 192, size)
    results = {"stage": stage, "steps": args.steps, "images": len(images), "arms": {}}
    for name in arms:
        config = StackGANConfig.from_preset(preset, **base, **ARMS[name])
        started = time.time()
        discriminator = train_discriminator(config, dataset, args.steps)
        model = StackGANModel(config.to_dict(), stages=stage)
        model.set_text_statistics(dataset.embedding_mean, dataset.embedding_std)
        pipe = StackGANPipeline(model, text_encoder=encoder)
        results["arms"][name] = {"minutes": (time.time() - started) / 60,
                                 "attributes": probe(pipe, discriminator, images, attributes)}
        row = results["arms"][name]["attributes"]
        print(name, " ".join(f"{k} {100 * v['logit']:.0f}/{100 * v['contrastive']:.0f}" for k, v in row.items()),
              flush=True)
    out = Path(args.results) / f"q5_discriminator_negatives_stage{stage}.json"
    out.write_text(json.dumps(results, indent=2))
    print("wrote", out)


if __name__ == "__main__":
    main()
