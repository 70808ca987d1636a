"""Train the image-text matcher that `train.py --matcher` uses as a loss for G (stackgan/matcher.py).

    python train/train_matcher.py --dataset shapes --data_dir data/shapes --output_dir runs/matcher

It reads the same caches as Stage-II training (real images, centre crops, and their caption
embeddings) and learns by InfoNCE: each image against its own caption, the batch's other captions,
a queue of earlier ones and, with --hard_negatives K, the K training captions nearest its own.
The negatives matter: a batch's other captions almost always differ in colour or background,
which the matcher then learns alone; among thousands, many differ in one detail only, and a
caption's nearest neighbours mostly do. On Shapes it finishes with a probe: for held-back test
images, how often the true caption beats every caption that differs from it in one attribute.
"""

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stackgan.config import StackGANConfig  # noqa: E402
from stackgan.data import build_dataset  # noqa: E402
from stackgan.matcher import ImageTextMatcher, MatcherConfig, NearestCaptions  # noqa: E402
from stackgan.text import TextEncoder  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=("shapes", "cub", "oxford", "coco", "folder"), default="shapes")
    p.add_argument("--data_dir", default="data/shapes")
    p.add_argument("--output_dir", default="runs/matcher")
    p.add_argument("--text_encoder", default=None, help="sentence-transformers id or folder (default: the preset's)")
    p.add_argument("--preset", default="shapes", help="for its text encoder and Stage-II image size")
    p.add_argument("--max_train_steps", type=int, default=2000)
    p.add_argument("--train_batch_size", type=int, default=64)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--queue", type=int, default=4096, help="earlier captions kept as extra negatives")
    p.add_argument("--hard_negatives", type=int, default=0,
                   help="per image, also the K training captions nearest its own caption (matcher.NearestCaptions)")
    p.add_argument("--image_size", type=int, default=MatcherConfig.image_size)
    p.add_argument("--channels", type=int, default=MatcherConfig.channels)
    p.add_argument("--detail", action="store_true",
                   help="read only the images' detail (minus a 5x5 local mean): textures and edges, not flat colour")
    p.add_argument("--init_from", default=None, help="a matcher folder to continue training (its sizes win)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--probe_images", type=int, default=192, help="Shapes only: test images probed at the end (0: none)")
    args = p.parse_args(argv)
    for name in ("max_train_steps", "train_batch_size", "image_size", "channels"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    for name in ("queue", "hard_negatives"):
        if getattr(args, name) < 0:
            p.error(f"--{name} must be >= 0, got {getattr(args, name)}")
    return args


def images_at(dataset, size: int, batch: int = 256) -> torch.Tensor:
    """Every (centre-cropped) image of the dataset area-resized to the matcher's input, as uint8
    in memory: reading 256 px crops from the cache each step would cost more than the step."""
    out = torch.empty(len(dataset), 3, size, size, dtype=torch.uint8)
    for start in tqdm(range(0, len(dataset), batch), desc=f"images at {size} px"):
        chunk = torch.stack([dataset[i]["image"] for i in range(start, min(start + batch, len(dataset)))])
        chunk = F.interpolate(chunk, size=(size, size), mode="area")
        out[start:start + len(chunk)] = ((chunk + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return out


def batches(dataset, images: torch.Tensor, batch_size: int, seed: int):
    """Endless shuffled batches of (images in [-1, 1], raw caption embeddings), one caption drawn
    afresh per image and epoch."""
    generator = torch.Generator().manual_seed(seed)
    for epoch in itertools.count():
        rng = np.random.default_rng((seed, epoch))
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            rows = order[start:start + batch_size]
            embedding = torch.stack([dataset.caption_embedding(int(i), rng) for i in rows])
            yield images[rows].float() / 127.5 - 1, embedding


@torch.no_grad()
def probe(matcher: ImageTextMatcher, encoder, data_dir, count: int) -> dict:
    """Per Shapes attribute, accuracy of the true caption against its one-attribute variants."""
    from probe_discriminator import one_attribute_variants, picked, real_shapes
    images, attributes = real_shapes(data_dir, "test", count, 256)
    image_vectors = matcher.embed_images(images)
    report = {}
    for key, values, captions, truth in one_attribute_variants(attributes):
        text = matcher.embed_text(torch.as_tensor(encoder.encode(captions))).view(len(attributes), values, -1)
        report[key] = {"accuracy": picked((text * image_vectors[:, None]).sum(-1), truth), "chance": 1 / values}
    return report


def main(argv=None) -> Path:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    preset = StackGANConfig.from_preset(args.preset)
    encoder = TextEncoder(args.text_encoder or preset.text_encoder)
    dataset = build_dataset(args.dataset, args.data_dir, resolution=preset.stage2_size, encoder=encoder,
                            wrong_image="none", crop="center", seed=args.seed)
    if args.init_from:
        matcher = ImageTextMatcher.from_pretrained(args.init_from).train().requires_grad_(True)
        if matcher.config.text_dim != dataset.embedding_dim:
            raise ValueError(f"--init_from {args.init_from} reads {matcher.config.text_dim}-d caption embeddings, "
                             f"the {args.dataset} captions are {dataset.embedding_dim}-d")
    else:
        matcher = ImageTextMatcher(MatcherConfig(text_dim=dataset.embedding_dim, image_size=args.image_size,
                                                 channels=args.channels, detail=args.detail))
    matcher.embedding_mean.copy_(torch.as_tensor(dataset.embedding_mean))
    matcher.embedding_std.copy_(torch.as_tensor(dataset.embedding_std))
    optimizer = torch.optim.Adam(matcher.parameters(), lr=args.learning_rate, betas=(0.9, 0.999))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.max_train_steps)
    queue = torch.zeros(0, dataset.embedding_dim)
    nearest = (NearestCaptions(dataset.embeddings, matcher.embedding_mean, matcher.embedding_std)
               if args.hard_negatives else None)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    log, started = [], time.time()
    stream = batches(dataset, images_at(dataset, matcher.config.image_size), args.train_batch_size, args.seed)
    progress = tqdm(range(1, args.max_train_steps + 1), desc="matcher")
    for step in progress:
        images, embedding = next(stream)
        loss = matcher.loss(images, embedding, queue if len(queue) else None,
                            nearest(embedding, args.hard_negatives) if nearest else None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        queue = torch.cat([embedding, queue])[:args.queue]
        progress.set_postfix(loss=f"{loss.item():.3f}")
        if step == 1 or step % 50 == 0:
            log.append({"step": step, "loss": loss.item(), "minutes": (time.time() - started) / 60})
    matcher.save_pretrained(output)
    matcher.eval()
    report = {"steps": args.max_train_steps, "minutes": (time.time() - started) / 60, "args": vars(args), "log": log}
    if args.dataset == "shapes" and args.probe_images:
        report["probe"] = probe(matcher, encoder, args.data_dir, args.probe_images)
        for key, row in report["probe"].items():
            print(f"  {key:<10} {100 * row['accuracy']:5.1f}%  (chance {100 * row['chance']:.1f}%)")
    (output / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"matcher saved to {output} ({report['minutes']:.1f} min)")
    return output


if __name__ == "__main__":
    main()
