"""Q1 of the guide: what each stage draws, and what conditioning augmentation (CA) buys.

    python experiments/q1_stackgan.py

1. The same captions through the bundled model's Stage-I (64 px) and Stage-II (256 px).
2. Two Stage-I runs that differ only in CA: the README's recipe, and the same with
   `--conditioning_augmentation false` (c = mu(text): no sampling, no KL term). Both are scored
   by train/evaluate.py: oracle attribute accuracy and the diversity ratio.
Writes docs/figures/q1_*.png and experiments/results/q1_stackgan.json.
"""

from __future__ import annotations

import numpy as np

from common import ATTRIBUTES, RECIPE, ensure_data, figure, parse_args, save, train_and_evaluate, write_figure
from stackgan import StackGANPipeline
from stackgan.images import make_grid

CAPTIONS = ["a large red star on a white background", "a small blue circle at the top left",
            "a medium green square in the center on a black background", "a yellow heart over a gray background",
            "a large purple triangle at the bottom right on a beige background", "a dotted orange diamond"]
DIVERSITY_CAPTION = "a large red star on a white background"


def stages_grid(args) -> None:
    out = StackGANPipeline.from_pretrained()(CAPTIONS, seed=0)
    rows = [[row[0] for row in out.stage1], [row[0] for row in out.stage2]]
    make_grid(rows, cell=112).save(f"{args.figures}/q1_stages.png", optimize=True)


def diversity_grid(args, models: dict) -> None:
    """Eight noise draws of one caption per model: CA's effect on variety, seen."""
    rows = [StackGANPipeline.from_pretrained(path)([DIVERSITY_CAPTION], num_images_per_prompt=8,
                                                    seed=0).stage1[0] for path in models.values()]
    make_grid(rows, cell=64).save(f"{args.figures}/q1_ca_samples.png")


def main():
    args = parse_args(__doc__.splitlines()[0], steps=1000)
    ensure_data(args)
    stages_grid(args)
    runs = {"with_ca": RECIPE, "without_ca": RECIPE + ["--conditioning_augmentation", "false"]}
    results = train_and_evaluate(args, {f"q1_{k}": v for k, v in runs.items()})
    diversity_grid(args, {name: f"{args.work_dir}/{name}" for name in results})

    fig, (accuracy, kl) = figure(columns=2)
    x = np.arange(len(ATTRIBUTES) + 1)
    for i, (name, r) in enumerate(results.items()):
        values = [r["accuracy"][k] for k in ATTRIBUTES] + [r["diversity_ratio"]]
        accuracy.bar(x + (i - 0.5) * 0.38, values, 0.38, label=name.replace("q1_", "").replace("_", " "))
        steps = [row["step"] for row in r["losses"]]
        kl.plot(steps, [row["kl"] for row in r["losses"]], label=name.replace("q1_", "").replace("_", " "))
    accuracy.set_xticks(x, [*ATTRIBUTES, "diversity\nratio"], fontsize=8)
    accuracy.set_title(f"Stage-I after {args.steps} steps ({args.samples} test captions)", fontsize=9)
    accuracy.legend(fontsize=8)
    kl.set_xlabel("step")
    kl.set_title("KL(N(mu, sigma) || N(0, I)) per dimension", fontsize=9)
    kl.legend(fontsize=8)
    write_figure(fig, args, "q1_ca_ablation.png")
    save(args, "q1_stackgan", {"steps": args.steps, "captions": CAPTIONS,
                               "runs": results,
                               "final_kl": {k: r["losses"][-1]["kl"] for k, r in results.items()}})


if __name__ == "__main__":
    main()
