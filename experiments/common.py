"""What the guide's experiments share: short Stage-I runs of train/train.py on Shapes, their
evaluation by train/evaluate.py, and the figure style. Every number in docs/stackgan-explained.md
comes from these two scripts, run as a user would run them.

`--smoke` (the tests) swaps in the tiny preset, a 20-image dataset and two steps, so a script's
whole path runs in seconds; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stackgan.data.shapes import PATTERNS  # noqa: E402
from stackgan.data.shapes.vocabulary import BACKGROUND_RGB  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
RESULTS = Path(__file__).resolve().parent / "results"
# The CPU recipe of the README (projection head, D's own text projection, lr 4e-4, contrastive
# loss, EMA): the baseline each experiment changes one thing of.
RECIPE = ["--d_matching", "inner_product", "--d_text_input", "projection", "--learning_rate", "4e-4",
          "--contrastive_weight", "1.0", "--use_ema"]
ATTRIBUTES = ("shape", "color", "size", "position", "background")


def parse_args(description: str, steps: int, extra=None) -> argparse.Namespace:
    """The experiments' shared flags; `extra(parser)` adds a script's own."""
    parser = argparse.ArgumentParser(description=description)
    if extra:
        extra(parser)
    parser.add_argument("--steps", type=int, default=steps, help="Stage-I steps per run")
    parser.add_argument("--samples", type=int, default=500, help="test captions per evaluation")
    parser.add_argument("--data_dir", default=str(ROOT / "data" / "shapes"))
    parser.add_argument("--work_dir", default=str(ROOT / "runs" / "experiments"))
    parser.add_argument("--figures", default=str(FIGURES))
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--smoke", action="store_true", help="tiny preset, 2 steps: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.samples = 2, 8
    for name in ("work_dir", "figures", "results"):
        Path(getattr(args, name)).mkdir(parents=True, exist_ok=True)
    args.started = time.time()
    return args


def ensure_data(args) -> None:
    """The Shapes dataset the README's recipe uses (seed 0), generated on first use."""
    if (Path(args.data_dir) / "train").is_dir():
        return
    count = ["--num-images", "24", "--num-heldout", "4"] if args.smoke else []
    subprocess.run([sys.executable, "-m", "stackgan.data.shapes", "--out", args.data_dir, *count],
                   check=True, cwd=ROOT)


def run(command: list[str], log: Path) -> None:
    """One subprocess on one thread (two run side by side on the 2-core reference box)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "w") as out:
        result = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode:
        raise RuntimeError(f"{command[1]} failed (exit {result.returncode}); see {log}")


def train(args, name: str, flags: list[str], validation_steps: int | None = None) -> Path:
    """A Stage-I run of `args.steps` steps with RECIPE-style flags; returns its output folder."""
    out = Path(args.work_dir) / name
    size = ["--preset", "tiny", "--train_batch_size", "4"] if args.smoke else []
    every = str(validation_steps or args.steps)
    run([sys.executable, "train/train.py", "--stage", "1", "--dataset", "shapes", "--data_dir", args.data_dir,
         "--output_dir", str(out), "--max_train_steps", str(args.steps), "--checkpointing_steps", str(args.steps),
         "--validation_steps", every, "--logging_steps", "10", *size, *flags], out.with_suffix(".log"))
    return out


def evaluate(args, model: Path) -> dict:
    """train/evaluate.py's report for a model (oracle accuracy, diversity, domain FID)."""
    out = model.with_name(model.name + "-eval")
    diversity = ["--diversity_captions", "2", "--diversity_samples", "2", "--is_splits", "2"] if args.smoke else []
    run([sys.executable, "train/evaluate.py", "--model", str(model), "--dataset", "shapes", "--data_dir",
         args.data_dir, "--num_samples", str(args.samples), "--output_dir", str(out), *diversity],
        out.with_suffix(".log"))
    return json.loads((out / "report.json").read_text())


def train_and_evaluate(args, runs: dict[str, list[str]], **train_options) -> dict[str, dict]:
    """{name: summary} for several runs, two at a time."""
    def one(item):
        name, flags = item
        model = train(args, name, flags, **train_options)
        return name, {**summary(evaluate(args, model)), "losses": losses(model)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, runs.items()))


def summary(report: dict, stage: str = "stage1") -> dict:
    """The figures the guide quotes from one report."""
    metrics = report["stages"][stage]
    accuracy = metrics["attribute_accuracy"]
    return {"accuracy": {k: round(accuracy[k]["accuracy"], 3) for k in ATTRIBUTES},
            "mean_accuracy": round(sum(accuracy[k]["accuracy"] for k in ATTRIBUTES) / len(ATTRIBUTES), 3),
            "diversity_ratio": round(metrics["diversity"]["oracle"]["ratio"], 3),
            "oracle_fid": round(metrics["oracle"]["fid"], 1),
            "samples": metrics["num_samples"]}


def losses(run_dir: Path) -> list[dict]:
    """The logged training statistics, one dict per logging step."""
    lines = (run_dir / "logs" / "train" / "metrics.jsonl").read_text().splitlines()
    return [row for row in map(json.loads, lines) if "d_loss" in row]


def save(args, name: str, results: dict) -> None:
    """Write results/<name>.json with the run time and the command (the runs' loss logs left out)."""
    results["seconds"] = round(time.time() - args.started, 1)
    results["command"] = " ".join(["python", str(Path(sys.argv[0]).resolve().relative_to(ROOT)), *sys.argv[1:]])
    if "runs" in results:
        results["runs"] = {k: {m: v for m, v in r.items() if m != "losses"} for k, r in results["runs"].items()}
    (Path(args.results) / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=1)[:2000])


def pattern_scores(predicted, targets) -> dict:
    """Accuracy and confusion matrix (rows: true pattern, columns: predicted) of Shapes pattern
    indices, as q8 and q9 report them."""
    confusion = [[int(((targets == t) & (predicted == p)).sum()) for p in range(len(PATTERNS))]
                 for t in range(len(PATTERNS))]
    return {"pattern": float((predicted == targets).float().mean()), "confusion": confusion}


def figure(width: float = 9, height: float = 3.2, columns: int = 1):
    fig, axes = plt.subplots(1, columns, figsize=(width, height), dpi=80, squeeze=False)
    return fig, axes[0]


def write_figure(fig, args, filename: str) -> Path:
    path = Path(args.figures) / filename
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def stack(images: list[Image.Image], horizontal: bool, gap: int = 10) -> Image.Image:
    """Images side by side (or one above the other), `gap` white pixels apart."""
    along = [im.width if horizontal else im.height for im in images]
    across = max(im.height if horizontal else im.width for im in images)
    total = sum(along) + gap * (len(images) - 1)
    sheet = Image.new("RGB", (total, across) if horizontal else (across, total), "white")
    for i, im in enumerate(images):
        offset = sum(along[:i]) + gap * i
        sheet.paste(im, (offset, 0) if horizontal else (0, offset))
    return sheet


def smooth(values: list[float], window: int = 5) -> list[float]:
    """Moving average, so a loss curve shows its trend rather than every step's noise."""
    out = []
    for i in range(len(values)):
        part = values[max(0, i - window + 1):i + 1]
        out.append(sum(part) / len(part))
    return out


def through(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images (B, 3, H, H) area-resized to `size` and bilinearly back: what survives at that
    resolution (a texture finer than it is averaged into a tint)."""
    small = F.interpolate(images, size=size, mode="area")
    return F.interpolate(small, size=images.shape[-1], mode="bilinear", align_corners=False)


def object_mask(image: np.ndarray, background: str, threshold: float = 60) -> np.ndarray:
    """(H, W, 1) 0/1: the pixels of `image` (H, W, 3, 0-255) far from the named background, their
    RGB's sum of absolute differences from it (0-765) above `threshold` (60: the drawn edges' blend
    stays background)."""
    reference = np.array(BACKGROUND_RGB[background], dtype=np.float32)
    return (np.abs(image - reference).sum(-1) > threshold).astype(np.float32)[..., None]
