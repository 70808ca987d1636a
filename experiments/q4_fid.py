"""Q4: how FID is computed, what moves it, and where it disagrees with the captions.

FID here is the domain FID of train/evaluate.py: the Shapes oracle's 256-d features instead of
the TF-Inception pool features, whose weights cannot be fetched offline. One seed, three checks:
  1. FID against sample count N (the bias): real test images, and the model's Stage-I images,
     each against one fixed real reference (train split); mean and spread over random subsets,
     and FID_inf from a fit FID_N = FID_inf + k / N (Chong & Forsyth, 2020).
  2. Resize and format: the same 256 px images brought to the oracle's 128 px input by PIL
     nearest / bilinear / bicubic or sent through JPEG, against the reference as the oracle
     itself resizes it (and, for real images, against a reference processed the same way).
  3. FID against attribute accuracy: real images with their own captions, the same images with
     the captions shuffled, and the trained model.

    OMP_NUM_THREADS=1 python experiments/q4_fid.py        # full run; writes the runtime too
    python experiments/q4_fid.py --smoke --model M --data_dir D --out DIR --results FILE
"""

import argparse
import importlib.util
import io
import json
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from stackgan import StackGANPipeline
from stackgan.data.problems import InputErrors
from stackgan.metrics import extract_features, feature_statistics, fid_from_statistics
from stackgan.metrics.shapes_oracle import INPUT_SIZE, attribute_accuracy, load_shapes_oracle

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("evaluate", ROOT / "train" / "evaluate.py")
evaluate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(evaluate)

FULL = {"sizes": (50, 100, 200, 500, 1000, 2000), "generated": 1000, "reference": 2000,
        "repeats": 5}
SMOKE = {"sizes": (8, 16), "generated": 16, "reference": 24, "repeats": 2}
SAMPLING = argparse.Namespace(batch_size=32, truncation=1.0, ca_mode="sample", ca_scale=1.0)


def jpeg(image, quality):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(buffer).convert("RGB")


# 256 px -> what the oracle reads. A 128 px image skips the oracle's own antialiased bilinear
# resize (shapes_oracle.to_input_size), so the PIL filter alone decides what it sees.
PREPROCESS = {
    "oracle's resize (antialiased bilinear)": lambda image: image,
    "PIL nearest": lambda image: image.resize((INPUT_SIZE, INPUT_SIZE), Image.NEAREST),
    "PIL bilinear": lambda image: image.resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR),
    "PIL bicubic": lambda image: image.resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC),
    "JPEG q90, oracle's resize": lambda image: jpeg(image, 90),
    "JPEG q75, oracle's resize": lambda image: jpeg(image, 75),
}


def fid_curve(features, reference, sizes, repeats, rng):
    """FID of random N-subsets of `features` against fixed `reference` statistics, per N."""
    curve = {"n": [], "mean": [], "std": []}
    for n in (n for n in sizes if n <= len(features)):
        draws = 1 if n == len(features) else repeats
        values = [fid_from_statistics(feature_statistics(
            features[rng.choice(len(features), n, replace=False)]), reference)
            for _ in range(draws)]
        curve["n"].append(n)
        curve["mean"].append(float(np.mean(values)))
        curve["std"].append(float(np.std(values)))
    # FID's bias falls like 1/N (Chong & Forsyth, 2020): extrapolate to N = infinity.
    slope, intercept = np.polyfit(1 / np.array(curve["n"]), curve["mean"], 1)
    curve["fid_infinity"], curve["bias_k"] = float(intercept), float(slope)
    return curve


def plot_fid_vs_n(curves, path):
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for axis, (name, curve) in zip(axes, curves.items()):
        axis.errorbar(curve["n"], curve["mean"], yerr=curve["std"], marker="o", capsize=3)
        axis.axhline(curve["fid_infinity"], ls="--", c="gray",
                     label=f"fit FID_inf + k/N: FID_inf = {curve['fid_infinity']:.1f}")
        axis.set(xscale="log", xlabel="images N (reference fixed)", ylabel="oracle FID",
                 title=name)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def plot_resize(resize, path):
    # Changes against the first row, so the model's ~1,000 and the real images' ~75 share an axis.
    names = list(resize)
    bars = (("real_vs_reference", "real test, reference via oracle's resize"),
            ("real_vs_same_processed_reference", "real test, reference processed the same way"),
            ("model_stage2_vs_reference", "model Stage-II, reference via oracle's resize"))
    figure, axis = plt.subplots(figsize=(8, 4.6))
    y = np.arange(len(names))
    for offset, (key, label) in zip((-0.27, 0, 0.27), bars):
        base = resize[names[0]][key]
        axis.barh(y + offset, [resize[n][key] - base for n in names], 0.27,
                  label=f"{label} (first row: {base:.1f})")
    axis.axvline(0, c="black", lw=0.8)
    axis.set(yticks=y, yticklabels=names, xlabel="FID change from the first row",
             title="Same 256 px images, other resize or format")
    axis.invert_yaxis()
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.4, -0.18))
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    config = SMOKE if args.smoke else FULL
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    oracle = load_shapes_oracle()

    def features(images):
        return extract_features(oracle, images, batch_size=64)

    test = evaluate.load_folder(args.data_dir, "test", InputErrors())
    train = evaluate.load_folder(args.data_dir, "train", InputErrors())
    reference = [train[i] for i in rng.choice(len(train), config["reference"], replace=False)]
    pairs = evaluate.pick_captions(test, config["generated"], rng)
    captions, matched = [c for c, _ in pairs], [e for _, e in pairs]

    generation_started = time.time()
    with tqdm(total=len(captions), desc="generating", unit="img", disable=args.smoke) as bar:
        generated = evaluate.generate(StackGANPipeline.from_pretrained(args.model), captions,
                                      args.seed, SAMPLING, bar)
    generation_seconds = time.time() - generation_started

    reference_64 = feature_statistics(features(evaluate.real_images(reference, 64)))
    test_64 = features(evaluate.real_images(test, 64))
    generated_64 = features(generated["stage1"])
    curves = {"real test vs real reference (64 px)":
              fid_curve(test_64, reference_64, config["sizes"], config["repeats"], rng),
              "model Stage-I vs real reference (64 px)":
              fid_curve(generated_64, reference_64, config["sizes"], config["repeats"], rng)}

    reference_256, matched_256 = (evaluate.real_images(reference, 256),
                                  evaluate.real_images(matched, 256))
    reference_stats = feature_statistics(features(reference_256))
    resize = {}
    for name, process in PREPROCESS.items():
        real = feature_statistics(features([process(image) for image in matched_256]))
        same = feature_statistics(features([process(image) for image in reference_256]))
        model = feature_statistics(features([process(image) for image in generated["stage2"]]))
        resize[name] = {"real_vs_reference": fid_from_statistics(real, reference_stats),
                        "real_vs_same_processed_reference": fid_from_statistics(real, same),
                        "model_stage2_vs_reference": fid_from_statistics(model, reference_stats)}

    # FID never reads the captions: shuffling them keeps the image set, and so the FID.
    baseline = resize[next(iter(PREPROCESS))]
    matched_64 = evaluate.real_images(matched, 64)
    real_fid_64 = fid_from_statistics(feature_statistics(features(matched_64)), reference_64)
    model_fid_64 = fid_from_statistics(feature_statistics(generated_64), reference_64)
    shuffled = [captions[i] for i in rng.permutation(len(captions))]
    agreement = {
        "real images, own captions": (real_fid_64, baseline["real_vs_reference"], matched_64,
                                      matched_256, captions),
        "real images, shuffled captions": (real_fid_64, baseline["real_vs_reference"],
                                           matched_64, matched_256, shuffled),
        "trained model": (model_fid_64, baseline["model_stage2_vs_reference"],
                          generated["stage1"], generated["stage2"], captions)}
    fid_vs_accuracy = {name: {"fid_64": fid_64, "fid_256": fid_256,
                              "accuracy_64": attribute_accuracy(oracle, small, texts),
                              "accuracy_256": attribute_accuracy(oracle, large, texts)}
                       for name, (fid_64, fid_256, small, large, texts) in agreement.items()}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_fid_vs_n(curves, out / "q4_fid_vs_n.png")
    plot_resize(resize, out / "q4_resize.png")
    results = {
        "command": "OMP_NUM_THREADS=1 python experiments/q4_fid.py" + (" --smoke" * args.smoke),
        "feature_extractor": "Shapes oracle, 256-d penultimate features (domain FID)",
        "model": relative(args.model), "data_dir": relative(args.data_dir), "seed": args.seed,
        "counts": {"test_real": len(test), "reference_real_train": len(reference),
                   "generated": len(captions), "subset_repeats": config["repeats"]},
        "fid_vs_n": curves, "resize": resize, "fid_vs_accuracy": fid_vs_accuracy,
        "torch_threads": torch.get_num_threads(),
        "seconds": {"generation": round(generation_seconds, 1),
                    "total": round(time.time() - started, 1)},
    }
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(results, indent=2) + "\n")
    print(f"{results['seconds']['total']} s; wrote {args.results} and {out}/q4_*.png")
    return results


def relative(path) -> str:
    """A path as the command line in the repository root would name it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "demo" / "pretrained" / "shapes"), help="default: the bundled model")
    parser.add_argument("--data_dir", default=str(ROOT / "data" / "shapes"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures"), help="figure folder")
    parser.add_argument("--results", default=str(ROOT / "experiments" / "results" / "q4_fid.json"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny counts, for the test")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
