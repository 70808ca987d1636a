"""Q6: can a StackGAN discriminator see Shapes' patterns at all, with and without `d_stem`?

Stage-II has to add the pattern (stripes 6 px, checks 4 px, dots 7 px apart at 256 px), yet the
recipe's Stage-II D read it at chance after 3,000 GAN steps (README, "What D reads"). This takes
the GAN out of the question: the D encoder, with a linear layer on its pooled features, is told
each real image's pattern label (cross-entropy, Adam 4e-4, batch 16) and tested on held-back
images. If it cannot learn the patterns from labels, it cannot learn them from captions.

    python experiments/q6_texture_stem.py                # Stage-II D, df_dim 16, 400 steps per arm
    python experiments/q6_texture_stem.py --stage 1      # the 64 px Stage-I D (df_dim 32)

Arms: "paper" (the paper's encoder: a stride-2 4x4 conv straight from RGB) and "stem"
(d_stem=True: a stride-1 3x3 conv at full resolution first).
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn

from common import ROOT, ensure_data, parse_args, save

sys.path.insert(0, str(ROOT / "train"))
from probe_discriminator import real_shapes  # noqa: E402

from stackgan import StackGANConfig  # noqa: E402
from stackgan.data.shapes import PATTERNS  # noqa: E402
from stackgan.models import Stage1Discriminator, Stage2Discriminator  # noqa: E402

ARMS = {"paper": False, "stem": True}


def labels(attributes: list[dict]) -> torch.Tensor:
    return torch.tensor([PATTERNS.index(a["pattern"]) for a in attributes])


def learn_patterns(config: StackGANConfig, stage: int, train, test, steps: int, batch_size: int,
                   seed: int = 0) -> list[dict]:
    """Train D's encoder + a linear classifier on (images, labels); test accuracy every 50 steps."""
    torch.manual_seed(seed)
    encoder = (Stage1Discriminator if stage == 1 else Stage2Discriminator)(config).encoder
    classifier = nn.Linear(config.df_dim * 8, len(PATTERNS))
    parameters = list(encoder.parameters()) + list(classifier.parameters())
    optimizer = torch.optim.Adam(parameters, lr=4e-4, betas=(0.5, 0.999))
    images, targets = train
    order = torch.Generator().manual_seed(seed)
    curve = []
    for step in range(1, steps + 1):
        pick = torch.randint(len(images), (batch_size,), generator=order)
        loss = F.cross_entropy(classifier(encoder(images[pick]).sum(dim=(2, 3))), targets[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == steps:
            with torch.no_grad():  # batch statistics, as D sees batches of real images in training
                predicted = classifier(encoder(test[0]).sum(dim=(2, 3))).argmax(dim=1)
            curve.append({"step": step, "loss": round(loss.item(), 4),
                          "test_accuracy": round((predicted == test[1]).float().mean().item(), 4)})
            print(f"step {step}: loss {loss.item():.3f}, test accuracy {curve[-1]['test_accuracy']:.3f}", flush=True)
    return curve


def main():
    args = parse_args(__doc__.split("\n")[0], steps=400,
                      extra=lambda p: p.add_argument("--stage", type=int, choices=(1, 2), default=2))
    ensure_data(args)
    size = 64 if args.stage == 1 else 256
    counts = (16, 8) if args.smoke else (1600, 256)
    train_images, train_attributes = real_shapes(args.data_dir, "train", counts[0], size)
    test_images, test_attributes = real_shapes(args.data_dir, "test", counts[1], size)
    train, test = (train_images, labels(train_attributes)), (test_images, labels(test_attributes))
    preset = "tiny" if args.smoke else "shapes"
    widths = {} if args.smoke or args.stage == 1 else {"df_dim": 16}  # the README's Stage-II D
    batch_size = 4 if args.smoke else 16
    results = {"stage": args.stage, "steps": args.steps, "train_images": counts[0], "test_images": counts[1],
               "chance": 1 / len(PATTERNS), "arms": {}}
    for name, stem in ARMS.items():
        print(f"arm {name}", flush=True)
        config = StackGANConfig.from_preset(preset, d_stem=stem, **widths)
        results["arms"][name] = learn_patterns(config, args.stage, train, test, args.steps, batch_size)
    save(args, f"q6_texture_stem_stage{args.stage}", results)


if __name__ == "__main__":
    main()
