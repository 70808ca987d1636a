"""Q2 of the guide: mode collapse, non-convergence and vanishing gradients, seen in our code.

    python experiments/q2_stabilisers.py

1. A Stage-I run set up to fail (the paper's concatenation head, no conditioning augmentation,
   D's learning rate 10x G's, no EMA), then the same run with a stabiliser: the mode-seeking loss
   (against collapse) and R1 + EMA (against non-convergence). train/evaluate.py scores each
   (diversity ratio, oracle accuracy); their logged D and G losses give the curves.
2. Vanishing gradients: a short training loop with the paper's settings that, at every step,
   measures the norm of G's gradient under the non-saturating loss -log D(G(z)) (what we train
   with) and under the saturating minimax loss log(1 - D(G(z))), on the same fake batch.
Writes docs/figures/q2_*.png and experiments/results/q2_stabilisers.json.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from common import ensure_data, figure, parse_args, save, smooth, stack, train_and_evaluate, write_figure
from stackgan import StackGANConfig, Stage1Discriminator, Stage1Generator
from stackgan.data import build_dataset
from stackgan.losses import adversarial_loss, discriminator_objective
from stackgan.text import TextEncoder

FAILING = ["--conditioning_augmentation", "false", "--g_learning_rate", "2e-4", "--d_learning_rate", "2e-3"]
# The slowest (R1's double backward) first, so the three runs fit two cores in the least time.
RUNS = {"q2_r1_ema": FAILING + ["--gradient_penalty", "r1", "--use_ema"],
        "q2_unstabilised": FAILING,
        "q2_mode_seeking": FAILING + ["--mode_seeking_weight", "1.0"]}


def gradient_norms(args, steps: int) -> dict:
    """Per step: |grad_G| under both G losses on the same batch, and mean D(G(z))."""
    torch.manual_seed(0)
    config = StackGANConfig.from_preset("tiny" if args.smoke else "shapes")
    dataset = build_dataset("shapes", args.data_dir, resolution=64, encoder=TextEncoder(config.text_encoder))
    mean, std = dataset.embedding_mean, dataset.embedding_std
    g, d = Stage1Generator(config).train(), Stage1Discriminator(config).train()
    opt_g = torch.optim.Adam(g.parameters(), lr=config.g_learning_rate, betas=config.adam_betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=config.d_learning_rate, betas=config.adam_betas)
    loader = DataLoader(dataset, batch_size=4 if args.smoke else config.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    log = {"step": [], "non_saturating": [], "saturating": [], "d_fake": []}
    batches = iter(loader)
    for step in range(1, steps + 1):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        real, embedding = batch["image"], (batch["embedding"] - mean) / std
        fake, mu, logvar = g(embedding, torch.randn(len(real), config.z_dim))
        d_loss, _ = discriminator_objective(config, d, real, fake, embedding, mu)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        logits = d.logits(d.encode(fake), d.condition(embedding, mu))
        for kind in ("non_saturating", "saturating"):
            grads = torch.autograd.grad(adversarial_loss(logits, saturating=kind == "saturating"),
                                        list(g.parameters()), retain_graph=True, allow_unused=True)
            log[kind].append(float(torch.sqrt(sum((x ** 2).sum() for x in grads if x is not None))))
        log["d_fake"].append(float(torch.sigmoid(logits.detach()).mean()))
        log["step"].append(step)
        opt_g.zero_grad()
        adversarial_loss(logits).backward()  # G trains with the non-saturating loss, as the paper's
        opt_g.step()
    return log


def sample_sheet(args, names) -> None:
    """The runs' final validation grids side by side (rows: the README's validation captions)."""
    stack([Image.open(f"{args.work_dir}/{name}/samples.png") for name in names],
          horizontal=True).save(f"{args.figures}/q2_samples.png")


def main():
    args = parse_args(__doc__.splitlines()[0], steps=800)
    ensure_data(args)
    results = train_and_evaluate(args, RUNS)
    sample_sheet(args, RUNS)
    grads = gradient_norms(args, steps=2 if args.smoke else 200)

    fig, (bars, d_loss, g_loss) = figure(width=12, columns=3)
    names = [n.replace("q2_", "").replace("_", " ") for n in results]
    x = np.arange(len(results))
    bars.bar(x - 0.2, [r["diversity_ratio"] for r in results.values()], 0.4, label="diversity ratio")
    bars.bar(x + 0.2, [r["mean_accuracy"] for r in results.values()], 0.4, label="mean attribute accuracy")
    bars.set_xticks(x, names, fontsize=8)
    bars.legend(fontsize=8)
    bars.set_title(f"after {args.steps} steps ({args.samples} test captions)", fontsize=9)
    for (name, r), label in zip(results.items(), names):
        steps = [row["step"] for row in r["losses"]]
        d_loss.plot(steps, smooth([row["d_loss"] for row in r["losses"]]), label=label)
        g_loss.plot(steps, smooth([row["g_loss"] for row in r["losses"]]), label=label)
    for axis, title in ((d_loss, "D loss"), (g_loss, "G loss")):
        axis.set_title(title + " (moving average of 5 logs)", fontsize=9)
        axis.set_xlabel("step")
        axis.legend(fontsize=8)
    write_figure(fig, args, "q2_stabilisers.png")

    fig, (norms, d_fake) = figure(columns=2)
    for kind in ("non_saturating", "saturating"):
        norms.semilogy(grads["step"], grads[kind], label=kind.replace("_", "-"))
    norms.set_title("|grad of G's loss w.r.t. G's weights|, same batches", fontsize=9)
    norms.set_xlabel("step")
    norms.legend(fontsize=8)
    d_fake.plot(grads["step"], grads["d_fake"])
    d_fake.set_title("D(G(z)): how sure D is that fakes are real", fontsize=9)
    d_fake.set_xlabel("step")
    write_figure(fig, args, "q2_vanishing_gradients.png")

    ratio = [s / n for s, n in zip(grads["saturating"], grads["non_saturating"])]
    save(args, "q2_stabilisers", {
        "steps": args.steps,
        "runs": results,
        "flags": RUNS,
        "gradients": {"steps": len(grads["step"]),
                      "median_saturating_over_non_saturating": float(np.median(ratio)),
                      "median_d_fake": float(np.median(grads["d_fake"])),
                      "first_10_d_fake": grads["d_fake"][:10]}})


if __name__ == "__main__":
    main()
