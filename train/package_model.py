"""Publishable model folder: a trained model plus its `train/evaluate.py` report in the card.

    python train/package_model.py --model runs/shapes-stage2 --report outputs/eval/report.json \
        --out demo/pretrained/shapes

Copies the model (weights, config with its training record), writes `evaluation.json` (the
report) and the report's sample grid beside it, and regenerates the model card with the metric
table: per stage, the attribute accuracies, held-out-pair accuracy, diversity ratio and the
domain FID/KID, with the sample counts. The weights are verified to load back identically.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from stackgan import StackGANPipeline
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


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder, train/ output or checkpoint folder")
    parser.add_argument("--report", required=True, help="report.json written by train/evaluate.py")
    parser.add_argument("--out", required=True, help="folder to write (replaced if it holds a model)")
    parser.add_argument("--note", default=None, help="a sentence for the card (e.g. what is still missing)")
    parser.add_argument("--repo_id", default=None, help="the Hub id the card's example loads (default: a placeholder path)")
    args = parser.parse_args(argv)

    report_path = Path(args.report)
    report = json.loads(report_path.read_text())
    pipe = StackGANPipeline.from_pretrained(args.model)
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

    out = Path(args.out)
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    pipe.save_pretrained(staging)
    verify_model_folder(staging, pipe.model)
    (staging / "evaluation.json").write_text(json.dumps(report, indent=1))
    if grid.is_file():
        shutil.copyfile(grid, staging / "samples.png")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)  # a failed run above leaves the previous folder untouched
    print(f"wrote {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))
    return out


if __name__ == "__main__":
    main()
