"""Which caption attributes does a Shapes discriminator read? A diagnostic for training runs.

    python train/probe_discriminator.py --checkpoint runs/shapes-stage1/checkpoint-4500 \
        --data_dir data/shapes --num_images 96

For each real test image (the evaluation view, at the checkpoint's stage size) it writes the
image's full caption once per value of one attribute, the other five kept true, and asks the
checkpoint's D which caption fits: by its matching logit, and by its contrastive similarity when
it has one. Accuracy is how often the true value scores highest (chance: 1 / number of values).

A generator only learns what its D rewards: an attribute D cannot read off real images gives G no
signal, however long it trains. Writes probe.json into the checkpoint folder unless --output given.
"""

import argparse
import json
from pathlib import Path

import torch

from evaluate import real_images
from stackgan import StackGANPipeline, Stage1Discriminator, Stage2Discriminator
from stackgan.data.folder import load_folder, metadata_path
from stackgan.data.problems import InputErrors
from stackgan.data.shapes import captions as words
from stackgan.images import to_tensor
from safetensors.torch import load_file

VALUES = {"shape": words.SHAPE_WORDS, "color": words.COLOR_WORDS, "size": words.SIZE_WORDS,
          "position": words.POSITION_PHRASES, "pattern": words.PATTERN_PHRASES,
          "background": words.BACKGROUND_WORDS}


def full_caption(attributes: dict[str, str]) -> str:
    """The dataset's all-six-attributes template, with each value's first wording."""
    return words.FULL_TEMPLATE[0].format(
        a="a", shape=words.SHAPE_WORDS[attributes["shape"]][0], color=words.COLOR_WORDS[attributes["color"]][0],
        size=words.SIZE_WORDS[attributes["size"]][0], pattern_with=words.PATTERN_PHRASES[attributes["pattern"]][0],
        position=words.POSITION_PHRASES[attributes["position"]][0],
        background=words.BACKGROUND_PHRASES[0].format(words.BACKGROUND_WORDS[attributes["background"]][0]))


def load_discriminator(checkpoint: Path):
    """(pipeline, discriminator, stage) of a train/train.py checkpoint folder."""
    weights = checkpoint / "discriminator.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: --checkpoint must be a train/train.py checkpoint-N folder")
    pipe = StackGANPipeline.from_pretrained(checkpoint / "pipeline")
    stage = 2 if pipe.model.stage2 is not None else 1
    discriminator = (Stage2Discriminator if stage == 2 else Stage1Discriminator)(pipe.config)
    discriminator.load_state_dict(load_file(str(weights)))
    return pipe, discriminator, stage


def real_shapes(data_dir, split: str, count: int, size: int) -> tuple[torch.Tensor, list[dict]]:
    """The first `count` images of a Shapes split in the evaluation view, and their attributes."""
    examples = load_folder(data_dir, split, InputErrors("raise"))[:count]
    with open(metadata_path(data_dir, split), encoding="utf-8") as f:
        labels = {entry["file_name"]: entry.get("attributes") for entry in map(json.loads, filter(str.strip, f))}
    attributes = [labels.get(e.key) for e in examples]
    if not examples or None in attributes:
        raise ValueError(f"{metadata_path(data_dir, split)} has no Shapes \"attributes\" for every image: "
                         "the probe needs the Shapes dataset (python -m stackgan.data.shapes)")
    return torch.stack([to_tensor(im) for im in real_images(examples, size)]), attributes


def one_attribute_variants(attributes: list[dict]):
    """Per attribute: (key, number of values, captions, truth). The captions are every image's
    full caption once per value of that attribute, the other five kept true, image by image; truth
    is the index of each image's true value."""
    for key, table in VALUES.items():
        values = list(table)
        captions = [full_caption({**a, key: v}) for a in attributes for v in values]
        yield key, len(values), captions, torch.tensor([values.index(a[key]) for a in attributes])


def picked(scores: torch.Tensor, truth: torch.Tensor) -> float:
    """Share of images whose true value scores highest (scores: one per caption, image by image)."""
    return (scores.view(len(truth), -1).argmax(1) == truth).float().mean().item()


@torch.no_grad()
def probe(pipe, discriminator, images: torch.Tensor, attributes: list[dict]) -> dict:
    """Per attribute: accuracy of D's matching logit (and contrastive similarity) at picking the
    true value among captions that differ only in it."""
    # Batch statistics, as D's BatchNorm sees a batch of real images in training.
    discriminator.train()
    features = discriminator.encode(images)
    # D's own text projection, or (d_text_input="generator_mu") the published generator's mu
    generator = pipe.model.stage2 if pipe.model.stage2 is not None else pipe.model.stage1
    report = {}
    for key, count, captions, truth in one_attribute_variants(attributes):
        embedding, _ = pipe.encode(captions)
        condition = discriminator.condition(embedding, generator.ca(embedding)[1])
        repeated = features.repeat_interleave(count, dim=0)
        row = {"values": count, "chance": 1 / count,
               "logit": picked(discriminator.logits(repeated, condition), truth)}
        if discriminator.contrastive_image is not None:
            image, text = discriminator.joint_embeddings(repeated, condition)
            row["contrastive"] = picked((image * text).sum(1), truth)
        report[key] = row
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a train/train.py checkpoint-N folder")
    parser.add_argument("--data_dir", default="data/shapes")
    parser.add_argument("--split", default="test")
    parser.add_argument("--num_images", type=int, default=96)
    parser.add_argument("--output", default=None, help="JSON file (default: CHECKPOINT/probe.json)")
    args = parser.parse_args(argv)
    checkpoint = Path(args.checkpoint)
    pipe, discriminator, stage = load_discriminator(checkpoint)
    size = pipe.config.stage2_size if stage == 2 else pipe.config.stage1_size
    images, attributes = real_shapes(args.data_dir, args.split, args.num_images, size)
    report = {"checkpoint": str(checkpoint), "stage": stage, "images": len(images),
              "attributes": probe(pipe, discriminator, images, attributes)}
    output = Path(args.output) if args.output else checkpoint / "probe.json"
    output.write_text(json.dumps(report, indent=2))
    print(f"D of {checkpoint} (stage {stage}) on {len(images)} real {args.split} images: "
          "accuracy at picking each attribute's true value")
    for key, row in report["attributes"].items():
        contrastive = f"  contrastive {100 * row['contrastive']:5.1f}%" if "contrastive" in row else ""
        print(f"  {key:<10} logit {100 * row['logit']:5.1f}%{contrastive}  (chance {100 * row['chance']:.1f}%)")
    return report


if __name__ == "__main__":
    main()
