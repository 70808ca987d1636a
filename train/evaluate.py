"""Evaluate a StackGAN model: FID, KID, IS, per-caption diversity and, on Shapes, whether the
images show what their captions say.

    python train/evaluate.py --model demo/pretrained/shapes --dataset shapes \
        --data_dir data/shapes --num_samples 1000 --output_dir outputs/eval

--model takes a model folder, a train/ checkpoint folder or a Hub id. Writes report.json (every
metric per stage, with sample counts and seeds), samples_stage*.png and the real images'
feature statistics (reference_*.npz) to --output_dir, and prints a summary.

Metrics per stage (Stage-I at 64 px, Stage-II at 256 px, each against real images at that size,
seen as StackGAN's evaluation crop: resized to size * 76 / 64, centre-cropped):
  * FID, KID and IS with the TF FID-Inception, when its weights are given (--fid_weights or
    $STACKGAN_FID_WEIGHTS; otherwise skipped, and the report says why);
  * Shapes: FID and KID in the oracle's feature space, the oracle's per-attribute accuracy
    against the captions (test captions and held-out (shape, color) pairs), and an IS per
    attribute from its logits;
  * diversity: per caption, mean pairwise feature distance of its samples / the same on real
    images with the caption's attributes, and MS-SSIM among 256 px samples.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from stackgan import StackGANPipeline
from stackgan.data.birds import load_cub, load_oxford
from stackgan.data.cache import load_size
from stackgan.data.coco import load_coco
from stackgan.data.folder import load_folder
from stackgan.data.preprocess import load_image
from stackgan.data.problems import InputErrors
from stackgan.data.shapes import HELD_OUT_PAIRS, parse_caption, render, sample_attributes
from stackgan.data.shapes.vocabulary import BACKGROUND_CLASHES
from stackgan.images import make_grid
from stackgan.metrics import (diversity_ratio, extract_features, feature_statistics,
                              fid_from_statistics, images_to_tensor, inception_score,
                              kernel_inception_distance, load_fid_inception, mean_pairwise_distance,
                              mean_pairwise_ms_ssim)
from stackgan.metrics.diversity import min_ms_ssim_size
from stackgan.metrics.inception import FID_WEIGHTS_ENV, RESIZE_METHODS
from stackgan.metrics.shapes_oracle import attribute_accuracy, load_shapes_oracle

LOADERS = {"shapes": load_folder, "folder": load_folder, "cub": load_cub, "oxford": load_oxford,
           "coco": load_coco}
STAGE_SIZES = {"stage1": 64, "stage2": 256}
# Seed offsets keep the three sample sets apart: sample j of a set uses seed + offset + j.
SEED_OFFSETS = {"test": 0, "heldout": 1_000_000, "diversity": 2_000_000}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Metrics for a StackGAN model or checkpoint.")
    parser.add_argument("--model", required=True,
                        help="model folder, train/ checkpoint folder, or Hub repo id")
    parser.add_argument("--dataset", required=True, choices=sorted(LOADERS))
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--output_dir", default="outputs/eval")
    parser.add_argument("--num_samples", type=int, default=1000, help="captions, one image each")
    parser.add_argument("--num_heldout", type=int, default=None,
                        help="Shapes held-out-pair samples (default: num_samples // 5)")
    parser.add_argument("--diversity_captions", type=int, default=16)
    parser.add_argument("--diversity_samples", type=int, default=8, help="images per caption")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truncation", type=float, default=1.0)
    parser.add_argument("--ca_mode", default="sample", choices=("sample", "mean"))
    parser.add_argument("--ca_scale", type=float, default=1.0)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--fid_weights", default=None,
                        help=f"pt_inception-2015-12-05-6726825d.pth (default: ${FID_WEIGHTS_ENV})")
    parser.add_argument("--fid_resize", default="bilinear", choices=RESIZE_METHODS)
    parser.add_argument("--oracle", default=None, help="Shapes oracle weights (default: shipped)")
    parser.add_argument("--is_splits", type=int, default=10)
    parser.add_argument("--kid_subsets", type=int, default=100)
    parser.add_argument("--kid_subset_size", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def pick_captions(examples, count, rng, keep=None):
    """`count` (caption, example) pairs: examples in a seeded order (cycled if too few), one of
    each example's captions at random. `keep(caption)` filters captions."""
    pairs = [(c, e) for e in examples for c in e.captions if keep is None or keep(c)]
    if not pairs:
        raise ValueError("no usable captions in the split")
    by_example = {}
    for caption, example in pairs:
        by_example.setdefault(example.key, []).append((caption, example))
    groups = [by_example[key] for key in rng.permutation(sorted(by_example))]
    return [groups[i % len(groups)][int(rng.integers(len(groups[i % len(groups)])))]
            for i in range(count)]


def names_shape_and_color(caption):
    """Only captions naming both shape and colour test an unseen (shape, color) pair."""
    return {"shape", "color"} <= set(parse_caption(caption))


def generate(pipe, captions, seed, args, bar, per_caption=1):
    """{stage: list of PIL images}; caption i's images use seed + i (the pipeline's rule)."""
    out = {"stage1": [], "stage2": []}
    step = max(1, args.batch_size // per_caption)
    for start in range(0, len(captions), step):
        result = pipe(captions[start:start + step], num_images_per_prompt=per_caption,
                      seed=seed + start, truncation=args.truncation, ca_mode=args.ca_mode,
                      ca_scale=args.ca_scale, batch_size=args.batch_size)
        out["stage1"].extend(im for row in result.stage1 for im in row)
        if result.stage2 is not None:
            out["stage2"].extend(im for row in result.stage2 for im in row)
        bar.update(len(result.stage1) * per_caption)
    return {stage: images for stage, images in out.items() if images}


def center_crop(image, size):
    """The evaluation view of a real image (stackgan.data.dataset with crop="center"): resized to
    load_size(size) = size * 76 / 64, then the central size x size. Generators learn from random
    crops of that size, so their objects are 19% larger than in the full image."""
    side = load_size(size)
    image = image.resize((side, side), Image.BILINEAR) if image.size != (side, side) else image
    margin = (side - size) // 2
    return image.crop((margin, margin, margin + size, margin + size))


def real_images(examples, size):
    """Real images at `size`, loaded (and CUB-cropped) as the training cache does, centre-cropped."""
    return [center_crop(Image.fromarray(load_image(e.image_path, load_size(size), e.bbox)
                                        .transpose(1, 2, 0)), size) for e in examples]


def render_matching(named, count, rng, max_tries=10_000):
    """`count` real Shapes images showing the attributes a caption names, the others drawn at
    random under the dataset's rules (no unnamed held-out pair, no background clash)."""
    images = []
    for _ in range(max_tries):
        attributes = {**sample_attributes(rng), **named}
        pair = (attributes["shape"], attributes["color"])
        if pair in HELD_OUT_PAIRS and not {"shape", "color"} <= set(named):
            continue
        if attributes["color"] in BACKGROUND_CLASHES[attributes["background"]]:
            continue
        images.append(render(attributes, size=256, rng=rng))
        if len(images) == count:
            return images
    raise ValueError(f"no Shapes image can show {named}: the colour clashes with the background")


def distribution_metrics(name, extractor, generated, real, args, bar):
    """FID, KID and IS of one extractor on one stage's images, plus the real statistics."""
    size = generated[0].size[0]
    generated_features = extract_features(extractor, generated, args.batch_size, bar)
    real_features = extract_features(extractor, real, args.batch_size, bar)
    metadata = {"extractor": extractor.name, "resize": getattr(extractor, "resize", "none"),
                "image_size": size, "dataset": f"{args.dataset}/{args.split}"}
    real_stats = feature_statistics(real_features, **metadata)
    real_stats.save(Path(args.output_dir) / f"reference_{name}_{size}px.npz")
    kid, kid_std = kernel_inception_distance(generated_features, real_features, args.kid_subsets,
                                             args.kid_subset_size, seed=args.seed)
    result = {"fid": fid_from_statistics(feature_statistics(generated_features, **metadata),
                                         real_stats),
              "kid": kid, "kid_std": kid_std, "kid_subset_size": min(
                  args.kid_subset_size, len(generated_features), len(real_features)),
              "num_generated": len(generated), "num_real": len(real)}
    with torch.no_grad():
        logits = extractor.classify(torch.from_numpy(generated_features).float().to(args.device))
    if isinstance(logits, dict):   # the oracle: one IS per attribute, at most its value count
        result["inception_score"] = {key: inception_score(value.cpu(), args.is_splits)
                                     for key, value in logits.items()}
    else:
        result["inception_score"] = inception_score(logits.cpu(), args.is_splits)
    return result


def diversity_metrics(extractors, generated_groups, real_groups, args):
    """Diversity ratio per extractor; MS-SSIM among samples where the size allows."""
    result = {}
    for name, extractor in extractors.items():
        features = [extract_features(extractor, group, args.batch_size)
                    for group in generated_groups]
        if real_groups:
            real = [extract_features(extractor, group, args.batch_size) for group in real_groups]
            result[name] = diversity_ratio(features, real)
        else:
            result[name] = {"generated": float(np.mean([mean_pairwise_distance(f)
                                                        for f in features]))}
    size = generated_groups[0][0].size[0]
    if size >= min_ms_ssim_size():
        result["ms_ssim"] = {"generated": float(np.mean(
            [mean_pairwise_ms_ssim(images_to_tensor(g)) for g in generated_groups]))}
        if real_groups:
            result["ms_ssim"]["real"] = float(np.mean(
                [mean_pairwise_ms_ssim(images_to_tensor(g)) for g in real_groups]))
    else:
        result["ms_ssim"] = f"not computed: {size} px < {min_ms_ssim_size()} px (5 scales)"
    return result


def real_diversity_groups(dataset, captions, examples, args, size):
    """Per diversity caption, real images with its attributes (Shapes: rendered from the
    caption; datasets with classes: images of the caption's class); None when neither."""
    rng = np.random.default_rng([args.seed, 3])
    count = args.diversity_samples
    if dataset == "shapes":
        return [[center_crop(im, size) for im in render_matching(parse_caption(c), count, rng)]
                for c, _ in captions]
    if all(e.label is not None for _, e in captions):
        by_label = {}
        for e in examples:
            by_label.setdefault(e.label, []).append(e)
        chosen = [by_label[e.label][:count] for _, e in captions]
        if min(len(group) for group in chosen) >= 2:
            return [real_images(group, size) for group in chosen]
    return None


def load_extractors(args):
    """{"inception": FID-Inception, "oracle": Shapes oracle}, each where available; reasons for
    what is skipped."""
    extractors, skipped = {}, {}
    try:
        extractors["inception"] = load_fid_inception(args.fid_weights, args.fid_resize)
    except FileNotFoundError as error:
        if args.fid_weights:                # asked for explicitly: a missing file is an error
            raise
        skipped["inception"] = str(error)
    if args.dataset == "shapes":
        extractors["oracle"] = load_shapes_oracle(args.oracle)
    for extractor in extractors.values():
        extractor.to(args.device)
    return extractors, skipped


def main(args, pipe=None):
    """Run every metric; returns the report written to output_dir/report.json."""
    started = time.time()
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    pipe = pipe or StackGANPipeline.from_pretrained(args.model, device=args.device)
    extractors, skipped = load_extractors(args)
    examples = LOADERS[args.dataset](args.data_dir, args.split, InputErrors())
    rng = np.random.default_rng(args.seed)
    test = pick_captions(examples, args.num_samples, rng)
    diversity = pick_captions(examples, args.diversity_captions, rng)
    heldout = []
    if args.dataset == "shapes" and (Path(args.data_dir) / "heldout").is_dir():
        heldout = pick_captions(load_folder(args.data_dir, "heldout", InputErrors()),
                                args.num_heldout if args.num_heldout is not None
                                else args.num_samples // 5, rng, keep=names_shape_and_color)
    else:
        skipped["heldout"] = "only for --dataset shapes with a heldout/ split"

    total = len(test) + len(heldout) + len(diversity) * args.diversity_samples
    generation_started = time.time()
    with tqdm(total=total, desc="generating", unit="img") as bar:
        samples = generate(pipe, [c for c, _ in test], args.seed + SEED_OFFSETS["test"], args, bar)
        held = generate(pipe, [c for c, _ in heldout], args.seed + SEED_OFFSETS["heldout"], args,
                        bar) if heldout else {}
        varied = generate(pipe, [c for c, _ in diversity], args.seed + SEED_OFFSETS["diversity"],
                          args, bar, per_caption=args.diversity_samples)
    generation_seconds = time.time() - generation_started

    stages = {}
    real_examples = [e for _, e in test][:len(examples)]   # the test captions' own images
    for stage, images in samples.items():
        size = STAGE_SIZES[stage]
        real = real_images(real_examples, size)
        report = {"num_samples": len(images), "image_size": size}
        with tqdm(total=(len(images) + len(real)) * len(extractors),
                  desc=f"features {stage}", unit="img") as bar:
            for name, extractor in extractors.items():
                report[name] = distribution_metrics(name, extractor, images, real, args, bar)
        if "oracle" in extractors:
            oracle = extractors["oracle"]
            report["attribute_accuracy"] = attribute_accuracy(oracle, images, [c for c, _ in test])
            if held:
                pairs = [{k: v for k, v in parse_caption(c).items() if k in ("shape", "color")}
                         for c, _ in heldout]
                report["heldout_attribute_accuracy"] = attribute_accuracy(
                    oracle, held[stage], [c for c, _ in heldout])
                report["heldout_pair_accuracy"] = attribute_accuracy(
                    oracle, held[stage], pairs)["all_named"]
        groups = [varied[stage][i:i + args.diversity_samples]
                  for i in range(0, len(varied[stage]), args.diversity_samples)]
        report["diversity"] = diversity_metrics(
            extractors, groups, real_diversity_groups(args.dataset, diversity, examples, args, size),
            args)
        make_grid(groups[:8]).save(output_dir / f"samples_{stage}.png")
        stages[stage] = report

    report = {
        "model": str(args.model), "dataset": args.dataset, "data_dir": str(args.data_dir),
        "split": args.split,
        "settings": {**{k: getattr(args, k) for k in ("truncation", "ca_mode", "ca_scale",
                                                      "fid_resize", "is_splits", "kid_subsets",
                                                      "kid_subset_size")},
                     "real_images": "centre crop of the image resized to size * 76 / 64"},
        "seeds": {"caption_choice": args.seed,
                  **{name: args.seed + offset for name, offset in SEED_OFFSETS.items()},
                  "rule": "sample j of a set uses that set's seed + j"},
        "counts": {"test": len(test), "heldout": len(heldout), "real": len(real_examples),
                   "diversity_captions": len(diversity),
                   "diversity_samples": args.diversity_samples},
        "stages": stages,
        "skipped": skipped,
        "grid_captions": [c for c, _ in diversity[:8]],
        "seconds": {"generation": round(generation_seconds, 1),
                    "total": round(time.time() - started, 1)},
    }
    (output_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(summary(report))
    print(f"report: {output_dir / 'report.json'}")
    return report


def summary(report):
    """A few lines for the terminal; everything else is in report.json."""
    lines = [f"{report['model']} on {report['dataset']}/{report['split']}"]
    for stage, metrics in report["stages"].items():
        parts = [f"{stage} ({metrics['image_size']} px, n={metrics['num_samples']}):"]
        for name in ("inception", "oracle"):
            if name in metrics:
                m = metrics[name]
                parts.append(f"{name} FID {m['fid']:.2f} KID {m['kid']:.4f}")
                if name == "inception":
                    parts.append(f"IS {m['inception_score'][0]:.2f}")
        if "attribute_accuracy" in metrics:
            accuracy = metrics["attribute_accuracy"]
            parts.append("accuracy " + " ".join(
                f"{k} {v['accuracy']:.3f}" for k, v in accuracy.items()
                if isinstance(v, dict) and v["accuracy"] is not None))
        if "heldout_pair_accuracy" in metrics:
            parts.append(f"held-out pairs {metrics['heldout_pair_accuracy']:.3f}")
        for name, value in metrics["diversity"].items():
            if isinstance(value, dict) and "ratio" in value:
                parts.append(f"diversity ratio ({name}) {value['ratio']:.3f}")
        lines.append(" ".join(parts))
    for name, reason in report["skipped"].items():
        lines.append(f"skipped {name}: {reason.splitlines()[0]}")
    lines.append(f"{report['seconds']['total']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    main(parse_args())
