"""The Shapes oracle: a small CNN that reads all six attributes off a Shapes image.

It scores generated images against their captions (does "a large red star at the top" show a
large red star at the top?) and, through its 256-d penultimate features, gives a domain FID/KID
and a diversity measure that need no external weights.

The shipped weights were trained on freshly rendered images (3,500 steps, then 1,200 fine-tuning
steps at a lower rate; 1.0-1.9 s a step on 2 shared CPU cores) and tested on a dataset written
by `python -m stackgan.data.shapes --out data/shapes`:

    python -m stackgan.metrics.shapes_oracle train --data data/shapes --out /tmp/oracle.safetensors
    python -m stackgan.metrics.shapes_oracle train --data data/shapes --init /tmp/oracle.safetensors \
        --steps 1200 --lr 5e-4 --seed 1 --out stackgan/metrics/shapes_oracle.safetensors
    python -m stackgan.metrics.shapes_oracle evaluate --data data/shapes
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from stackgan.data.cache import load_size
from stackgan.data.shapes import ATTRIBUTE_KEYS, VOCABULARY, parse_caption, render, sample_attributes
from stackgan.metrics.fid import images_to_tensor, module_device

ORACLE_FILE = Path(__file__).with_name("shapes_oracle.safetensors")
INPUT_SIZE = 128       # 256 px patterns (stripes 6 px, checks 4 px) keep >= 3 px periods at 128
FEATURE_DIM = 256
WIDTHS = (16, 32, 64, 96, 128, 128)   # one 3x3 conv each; all but the first halve the size
STAGE1_SIZE = 64
HELD_OUT_SHARE = 0.1   # 8 of the 80 (shape, color) pairs: the oracle sees every pair
SHRINK_FILTERS = (Image.BILINEAR, Image.BICUBIC)
# Share of training images drawn as StackGAN training crops, what generators learn to imitate.
CROP_SHARE = 0.5


def conv_bn_relu(in_channels, out_channels, stride):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def to_input_size(images):
    """Float (B, 3, H, W) -> (B, 3, 128, 128), bilinear with antialiasing when shrinking."""
    if images.shape[-2:] == (INPUT_SIZE, INPUT_SIZE):
        return images
    return F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                         align_corners=False, antialias=True)


class ShapesOracle(nn.Module):
    """Attribute classifier for Shapes images.

    `forward` takes float (B, 3, H, W) in [0, 1] of any size (64 px Stage-I and 256 px Stage-II
    images alike: it resizes to 128 px, antialiased) and returns (B, 256) features;
    `classify(features)` returns {attribute: logits (B, number of values)} for ATTRIBUTE_KEYS.
    """

    feature_dim = FEATURE_DIM
    name = "shapes-oracle"
    resize = f"bilinear-antialias-{INPUT_SIZE}"

    def __init__(self):
        super().__init__()
        layers, channels = [], 3
        for index, width in enumerate(WIDTHS):
            layers.append(conv_bn_relu(channels, width, stride=1 if index == 0 else 2))
            channels = width
        self.trunk = nn.Sequential(*layers)            # (B, 3, 128, 128) -> (B, 128, 4, 4)
        side = INPUT_SIZE // 2 ** (len(WIDTHS) - 1)
        self.embed = nn.Sequential(nn.Linear(channels * side * side + channels, FEATURE_DIM),
                                   nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({key: nn.Linear(FEATURE_DIM, len(VOCABULARY[key]))
                                    for key in ATTRIBUTE_KEYS})

    def forward(self, images):
        maps = self.trunk(2 * to_input_size(images) - 1)          # (B, 128, 4, 4)
        # Flattened for where the object is (position); averaged for what it is wherever it is
        # (shape, pattern), which a flattened map alone learns slowly, once per location.
        return self.embed(torch.cat([maps.flatten(1), maps.mean(dim=(2, 3))], dim=1))

    def classify(self, features):
        """Features (B, 256) -> {attribute: logits (B, K_attribute)}."""
        return {key: head(features) for key, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images, batch_size=64):
        """Images (PIL list or float tensor in [0, 1]) -> {attribute: list of predicted words}."""
        indices = {key: [] for key in ATTRIBUTE_KEYS}
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            batch = batch if torch.is_tensor(batch) else images_to_tensor(batch)
            for key, logits in self.classify(self(batch.to(module_device(self)))).items():
                indices[key].extend(logits.argmax(dim=1).tolist())
        return {key: [VOCABULARY[key][i] for i in values] for key, values in indices.items()}


def load_shapes_oracle(path=None):
    """The trained oracle in eval mode (default: the file shipped in this package)."""
    path = Path(path) if path else ORACLE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"Shapes oracle weights not found at {path}. Train them with: python -m "
            f"stackgan.metrics.shapes_oracle train --data data/shapes --out {path}")
    with safe_open(str(path), framework="pt") as f:
        vocabulary = json.loads((f.metadata() or {}).get("vocabulary", "null"))
    if vocabulary != {key: list(values) for key, values in VOCABULARY.items()}:
        raise ValueError(f"{path} was trained on another Shapes vocabulary than "
                         "stackgan.data.shapes now has; retrain the oracle")
    oracle = ShapesOracle()
    state = load_file(str(path))
    oracle.load_state_dict({key: value.float() if value.is_floating_point() else value
                            for key, value in state.items()}, strict=True)
    return oracle.eval().requires_grad_(False)


def attribute_accuracy(oracle, images, captions, batch_size=64):
    """Per-attribute accuracy of images against what their captions name.

    Each caption is read with `parse_caption`; an image is checked only on the attributes its
    caption names. `captions` may also be attribute dicts (e.g. the dataset's full labels).

    Returns {attribute: {"accuracy", "count"}} plus "all_named" (share of images with every named
    attribute right) and "num_images".
    """
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    named = [parse_caption(c) if isinstance(c, str) else dict(c) for c in captions]
    predicted = oracle.predict(images, batch_size)
    report, all_right = {}, np.ones(len(images), dtype=bool)
    for key in ATTRIBUTE_KEYS:
        rows = [i for i, attributes in enumerate(named) if key in attributes]
        right = np.array([predicted[key][i] == named[i][key] for i in rows], dtype=bool)
        all_right[np.array(rows, dtype=int)[~right]] = False
        report[key] = {"accuracy": float(right.mean()) if rows else None, "count": len(rows)}
    report["all_named"] = float(all_right.mean())
    report["num_images"] = len(images)
    return report


def to_stage1(image, resample=Image.BILINEAR):
    """256 px image -> 64 px; PIL's bilinear is what the training cache uses
    (stackgan.data.preprocess.load_image), and it antialiases when shrinking."""
    return image.resize((STAGE1_SIZE, STAGE1_SIZE), resample)


def training_crop(image, size, rng):
    """The image as StackGAN training sees it (stackgan.data.dataset): resized to
    load_size(size) = size * 76 / 64 and randomly cropped to size x size. Objects look 19% larger
    and shift by up to 6 px (64 px) or 24 px (256 px)."""
    side = load_size(size)
    top, left = (int(v) for v in rng.integers(0, side - size + 1, size=2))
    return image.resize((side, side), Image.BILINEAR).crop((left, top, left + size, top + size))


def read_split(folder, limit=None):
    """(images, attribute dicts) of a split written by stackgan.data.shapes.generate."""
    folder = Path(folder)
    metadata = folder / "metadata.jsonl"
    if not metadata.is_file():
        raise FileNotFoundError(f"{metadata} not found; write the dataset with: python -m "
                                f"stackgan.data.shapes --out {folder.parent}")
    records = [json.loads(line) for line in metadata.read_text().splitlines() if line.strip()]
    records = records[:limit]
    images = [Image.open(folder / r["file_name"]).convert("RGB") for r in records]
    return images, [r["attributes"] for r in records]


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


class RenderedBatches(torch.utils.data.IterableDataset):
    """Endless batches of freshly rendered images at the oracle's input size, with labels
    (B, 6) as vocabulary indices. The first `num_small` images of each batch went through 64 px,
    so that the oracle also reads Stage-I images; all share one BatchNorm batch. Half the images
    are training crops (see `training_crop`)."""

    def __init__(self, batch_size, stage1_share, seed):
        super().__init__()
        self.batch_size, self.seed = batch_size, seed
        self.num_small = int(round(batch_size * stage1_share))

    @staticmethod
    def view(image, small, rng):
        """A 256 px render as a real image, or as a training crop, at 256 or 64 px."""
        size = STAGE1_SIZE if small else image.size[0]
        if rng.random() < CROP_SHARE:
            return training_crop(image, size, rng)
        # Either filter, so that the oracle does not depend on one resize's sharpness.
        return to_stage1(image, _pick(rng, SHRINK_FILTERS)) if small else image

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, 7919, worker.id if worker else 0])
        while True:
            attributes = [sample_attributes(rng, held_out=rng.random() < HELD_OUT_SHARE)
                          for _ in range(self.batch_size)]
            images = [self.view(render(a, size=256, rng=rng), i < self.num_small, rng)
                      for i, a in enumerate(attributes)]
            small, large = images[:self.num_small], images[self.num_small:]
            parts = [to_input_size(images_to_tensor(large))]
            if small:
                parts.insert(0, to_input_size(images_to_tensor(small)))
            labels = torch.tensor([[VOCABULARY[k].index(a[k]) for k in ATTRIBUTE_KEYS]
                                   for a in attributes])
            yield torch.cat(parts), labels


def summed_cross_entropy(logits, labels):
    """sum over attributes k of CE(logits_k, labels[:, k]), each averaged over the batch."""
    return sum(F.cross_entropy(logits[key], labels[:, i]) for i, key in enumerate(ATTRIBUTE_KEYS))


def train(args):
    """Train on rendered images, save fp16 safetensors, then test on --data if given."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    oracle = ShapesOracle()
    if args.init:
        oracle.load_state_dict(load_shapes_oracle(args.init).state_dict())
    optimizer = torch.optim.AdamW(oracle.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.steps)
    batches = torch.utils.data.DataLoader(RenderedBatches(args.batch_size, args.stage1_share,
                                                          args.seed),
                                          batch_size=None, num_workers=1, prefetch_factor=4)
    start = time.time()
    large = slice(batches.dataset.num_small, None)
    for step, (images, labels) in enumerate(batches, start=1):
        oracle.train()
        logits = oracle.classify(oracle(images))
        loss = summed_cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % args.log_every == 0 or step == args.steps:
            right = {k: (logits[k][large].argmax(1) == labels[large, i]).float().mean().item()
                     for i, k in enumerate(ATTRIBUTE_KEYS)}
            print(f"step {step}/{args.steps} loss {loss.item():.4f} 256px batch accuracy "
                  + " ".join(f"{k} {v:.3f}" for k, v in right.items())
                  + f" ({(time.time() - start) / step:.2f} s/step)", flush=True)
        if step == args.steps:
            break
    oracle.eval()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half() if v.is_floating_point() else v
               for k, v in oracle.state_dict().items()}, str(args.out),
              metadata={"vocabulary": json.dumps(VOCABULARY), "input_size": str(INPUT_SIZE),
                        "steps": str(args.steps), "seed": str(args.seed),
                        "init": Path(args.init).name if args.init else ""})
    print(f"saved {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB)")
    if args.data:
        evaluate(argparse.Namespace(data=args.data, weights=args.out, limit=args.eval_limit))


def evaluate(args):
    """Print the accuracy table on the dataset's test split (256 and 64 px) and held-out split."""
    oracle = load_shapes_oracle(args.weights)
    rng = np.random.default_rng(0)
    table = {}
    for split in ("test", "heldout"):
        images, attributes = read_split(Path(args.data) / split, args.limit)
        views = {"256px": images, "64px": [to_stage1(im) for im in images]}
        if split == "test":
            views["256px training crops"] = [training_crop(im, 256, rng) for im in images]
            views["64px training crops"] = [training_crop(im, STAGE1_SIZE, rng) for im in images]
        for name, view in views.items():
            table[f"{split} {name}"] = attribute_accuracy(oracle, view, attributes)
    print(format_table(table))
    return table


def format_table(table):
    """Markdown table: one row per evaluation, one column per attribute."""
    header = "| images | n | " + " | ".join(ATTRIBUTE_KEYS) + " | all |"
    lines = [header, "|" + "---|" * (len(ATTRIBUTE_KEYS) + 3)]
    for name, report in table.items():
        cells = [f"{100 * report[k]['accuracy']:.2f}" for k in ATTRIBUTE_KEYS]
        lines.append(f"| {name} | {report['num_images']} | " + " | ".join(cells)
                     + f" | {100 * report['all_named']:.2f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m stackgan.metrics.shapes_oracle",
                                     description="Train or test the Shapes attribute oracle.")
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("train", help="train on freshly rendered images")
    fit.add_argument("--out", default=str(ORACLE_FILE), help="weights file to write")
    fit.add_argument("--data", default=None,
                     help="a dataset from `python -m stackgan.data.shapes`: tested on at the end")
    fit.add_argument("--init", default=None, help="start from these weights (fine-tuning)")
    fit.add_argument("--steps", type=int, default=3500)
    fit.add_argument("--batch_size", type=int, default=64)
    fit.add_argument("--lr", type=float, default=2e-3)
    fit.add_argument("--stage1_share", type=float, default=0.25,
                     help="share of each batch shrunk to 64 px")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--threads", type=int, default=1, help="torch threads (rendering has its own)")
    fit.add_argument("--log_every", type=int, default=50)
    fit.add_argument("--eval_limit", type=int, default=None, help="test images per split")
    test = commands.add_parser("evaluate", help="accuracy table on a dataset's test splits")
    test.add_argument("--data", required=True)
    test.add_argument("--weights", default=str(ORACLE_FILE))
    test.add_argument("--limit", type=int, default=None, help="images per split")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    train(args) if args.command == "train" else evaluate(args)


if __name__ == "__main__":
    main()
