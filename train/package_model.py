"""Publishable model folder: a trained model plus its `train/evaluate.py` report in the card.

    python train/package_model.py --model runs/shapes-stage2 --report outputs/eval/report.json \
        --out demo/pretrained/shapes

Copies the model (weights, config with its training record), writes `evaluation.json` (the
report) and the report's sample grid beside it, and regenerates the model card with the metric
table: per stage, the attribute accuracies, held-out-pair accuracy, diversity ratio and the
domain FID/KID, with the sample counts. The weights are verified to load back identically.

`--discriminator CHECKPOINT` (once per stage) ships the D a stage's generator was trained against,
from that run's training checkpoint, so a fine-tune of the published model (`train.py --init_from`)
need not start a fresh one.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from stackgan import StackGANModel, StackGANPipeline
from stackgan.checkpoint import load_discriminator, save_discriminators
from stackgan.pipeline import verify_model_folder


def metric_table(report: dict) -> dict:
    """{stage: {metric: value}} for the model card, from an evaluate.py report."""
    table = {}
    for stage, metrics in report["stages"].items():
        row = {"samples": metrics["num_samples"], "image_size": metrics["image_size"]}
        for key, value in metrics.get("attribute_accuracy", {}).items():
            if isinstance(value, dict) and value.get("accuracy") is not None:
                row[f"{key} accuracy"] = value["accuracy"]
        if "heldout_pair_accuracy" in metrics:
            row["held-out pair accuracy"] = metrics["heldout_pair_accuracy"]
        if "oracle" in metrics.get("diversity", {}):
            row["diversity ratio"] = metrics["diversity"]["oracle"]["ratio"]
        for extractor in ("oracle", "inception"):
            if extractor in metrics:
                row[f"FID ({extractor})"] = metrics[extractor]["fid"]
                row[f"KID ({extractor})"] = metrics[extractor]["kid"]
        table[stage] = row
    return table


def checkpoint_discriminators(checkpoints: list[str], model: StackGANModel) -> dict[int, dict]:
    """{stage: D state dict} from training checkpoints, each checked to belong to `model`: the
    checkpoint's exported generator must be the model's generator of that stage, bit for bit."""
    found = {}
    for folder in map(Path, checkpoints):
        weights = folder / "discriminator.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"--discriminator {folder}: no discriminator.safetensors (expected a "
                                    "train/train.py checkpoint-N folder)")
        trained = StackGANModel.from_pretrained(folder)
        stage = trained.stages
        if stage in found:
            raise ValueError(f"--discriminator {folder}: a second Stage-{stage} discriminator")
        if stage > model.stages:
            raise ValueError(f"--discriminator {folder}: a Stage-{stage} D for a {model.stages}-stage model")
        ours, theirs = (getattr(m, f"stage{stage}").state_dict() for m in (model, trained))
        if any(not torch.equal(ours[key], theirs[key]) for key in ours):
            raise ValueError(f"--discriminator {folder}: its Stage-{stage} generator is not this model's; "
                             "that D was trained against another generator")
        try:
            found[stage] = load_file(str(weights))
        except Exception as error:  # safetensors raises its own error types for corrupt headers
            raise ValueError(f"{weights} is not a valid safetensors file: {error}") from None
    return found


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder, train/ output or checkpoint folder")
    parser.add_argument("--report", required=True, help="report.json written by train/evaluate.py")
    parser.add_argument("--out", required=True, help="folder to write (replaced if it holds a model)")
    parser.add_argument("--note", default=None, help="a sentence for the card (e.g. what is still missing)")
    parser.add_argument("--repo_id", default=None, help="the Hub id the card's example loads (default: a placeholder path)")
    parser.add_argument("--discriminator", action="append", default=[], metavar="CHECKPOINT",
                        help="a training checkpoint of one of the model's stages: ship its D (repeat per stage)")
    args = parser.parse_args(argv)

    report_path = Path(args.report)
    report = json.loads(report_path.read_text())
    pipe = StackGANPipeline.from_pretrained(args.model)
    discriminators = checkpoint_discriminators(args.discriminator, pipe.model)
    info = pipe.model.training_info
    info["metrics"] = metric_table(report)
    if args.repo_id:
        info["repo_id"] = args.repo_id
    dataset_info = Path(report.get("data_dir", "")) / "dataset_info.json"
    if report.get("data_dir") and dataset_info.is_file():  # Shapes: the seed the data was generated with
        info["data_seed"] = json.loads(dataset_info.read_text()).get("seed")
    last_stage = "stage2" if "stage2" in report["stages"] else "stage1"
    grid = report_path.parent / f"samples_{last_stage}.png"
    if grid.is_file():
        info["sample_grid"] = "samples.png"
    if args.note:
        info["note"] = args.note
    info.pop("discriminators", None)  # what this folder ships, not what a model it came from did
    if discriminators:
        info["discriminators"] = sorted(discriminators)

    out = Path(args.out)
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    pipe.save_pretrained(staging)
    verify_model_folder(staging, pipe.model)
    if discriminators:
        save_discriminators(staging, discriminators)
        for stage, tensors in discriminators.items():
            loaded = load_discriminator(staging, stage)
            if loaded.keys() != tensors.keys() or any(not torch.equal(loaded[k], v) for k, v in tensors.items()):
                raise ValueError(f"Stage-{stage} discriminator changed in the save/load round trip")
    (staging / "evaluation.json").write_text(json.dumps(report, indent=1))
    if grid.is_file():
        shutil.copyfile(grid, staging / "samples.png")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)  # a failed run above leaves the previous folder untouched
    print(f"wrote {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))
    return out


if __name__ == "__main__":
    main()
