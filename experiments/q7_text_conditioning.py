"""Q7: does the caption reach the generator? Each Shapes attribute read back from the text side.

The recipe's Stage-I draws the named colour far more often than the named position (README,
"How far the CPU recipe gets"). Before blaming the GAN, check its input. For each attribute a
linear classifier is trained on the training captions that name it and tested on the test
split's, reading three things a trained model computes from a caption:

- "embedding": the standardised sentence-transformers embedding (what D and CA receive);
- "condition_mean": the generator's conditioning augmentation mean mu (fc + ReLU);
- "condition_sample": c = mu + sigma * eps, one draw per caption, as G sees it in training.

It also measures how far changing one attribute of a full caption moves each representation
("swap distance": the mean distance to the caption with that attribute changed, over the mean
distance between the full captions of two different images).

    python experiments/q7_text_conditioning.py                         # the bundled model's Stage-I
    python experiments/q7_text_conditioning.py --stage 2               # its Stage-II's own CA
    python experiments/q7_text_conditioning.py --model runs/shapes-stage1
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F

from common import ROOT, ensure_data, parse_args, save

sys.path.insert(0, str(ROOT / "train"))
from probe_discriminator import VALUES, full_caption, real_shapes  # noqa: E402

from stackgan import StackGANPipeline  # noqa: E402
from stackgan.data import build_dataset  # noqa: E402
from stackgan.data.shapes import VOCABULARY, parse_caption  # noqa: E402

ARMS = ("embedding", "condition_mean", "condition_sample")


def captions_of(dataset) -> tuple[list[str], np.ndarray]:
    """Every caption of a cached split in embedding-row order, and which of them name all six."""
    flat = [caption for group in dataset.captions for caption in group]
    full = np.array([len(parse_caption(c)) == len(VOCABULARY) for c in flat])
    return flat, full


@torch.no_grad()
def represent(pipe, stage: int, embeddings: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """The three representations of raw (unstandardised) caption embeddings, for one stage's CA."""
    standardised = pipe.model.standardize(torch.as_tensor(np.asarray(embeddings, dtype=np.float32)))
    ca = getattr(pipe.model, f"stage{stage}").ca
    eps = torch.randn(len(standardised), pipe.config.condition_dim, generator=torch.Generator().manual_seed(seed))
    condition, mu, _ = ca(standardised, eps)
    return {"embedding": standardised, "condition_mean": mu, "condition_sample": condition}


def linear_probe(train_x, train_y, test_x, test_y, classes: int, steps: int, seed: int = 0) -> tuple[float, torch.Tensor]:
    """Multinomial logistic regression, full batch: (train accuracy, test predictions)."""
    torch.manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)  # mu's dimensions differ in scale
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    layer = torch.nn.Linear(train_x.shape[1], classes)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = F.cross_entropy(layer(train_x), train_y) + 1e-4 * layer.weight.pow(2).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return (layer(train_x).argmax(1) == train_y).float().mean().item(), layer(test_x).argmax(1)


def readability(train, test, steps: int) -> dict:
    """{arm: {attribute: accuracies}} from (representations, captions, full-caption mask) pairs."""
    (train_rep, train_caps, _), (test_rep, test_caps, test_full) = train, test
    train_named, test_named = [parse_caption(c) for c in train_caps], [parse_caption(c) for c in test_caps]
    results = {arm: {} for arm in ARMS}
    for key, values in VOCABULARY.items():
        rows_train = [i for i, n in enumerate(train_named) if key in n]
        rows_test = [i for i, n in enumerate(test_named) if key in n]
        y_train = torch.tensor([values.index(train_named[i][key]) for i in rows_train])
        y_test = torch.tensor([values.index(test_named[i][key]) for i in rows_test])
        full = torch.from_numpy(test_full[rows_test])
        for arm in ARMS:
            train_accuracy, predicted = linear_probe(train_rep[arm][rows_train], y_train, test_rep[arm][rows_test],
                                                     y_test, len(values), steps)
            right = predicted == y_test
            results[arm][key] = {"train": round(train_accuracy, 4), "test": round(right.float().mean().item(), 4),
                                 "test_full_captions": round(right[full].float().mean().item(), 4) if full.any() else None,
                                 "test_captions": len(rows_test), "chance": round(1 / len(values), 4)}
            print(f"{arm:17s} {key:10s} test {results[arm][key]['test']:.3f}", flush=True)
    return results


def swap_distances(pipe, stage: int, attributes: list[dict]) -> dict:
    """{arm: {attribute: mean distance to the one-attribute-changed caption / mean distance between images}}."""
    bases = [full_caption(a) for a in attributes]
    base = represent(pipe, stage, pipe.text_encoder.encode(bases))
    between = {arm: torch.pdist(rep).mean().item() for arm, rep in base.items()}
    results = {arm: {} for arm in ARMS}
    for key, table in VALUES.items():
        swapped, owner = [], []
        for i, a in enumerate(attributes):
            for value in table:
                if value != a[key]:
                    swapped.append(full_caption({**a, key: value}))
                    owner.append(i)
        # The same eps for a caption and its swaps: the distance is the caption's, not the noise's.
        rep = represent(pipe, stage, pipe.text_encoder.encode(swapped))
        rep["condition_sample"] = rep["condition_mean"] + (base["condition_sample"] - base["condition_mean"])[owner]
        for arm in ARMS:
            distance = (rep[arm] - base[arm][owner]).norm(dim=1).mean().item()
            results[arm][key] = round(distance / between[arm], 4)
    return results


def main():
    def extra(parser):
        parser.add_argument("--model", default=None, help="a Stage-I or two-stage model (default: the bundled one)")
        parser.add_argument("--stage", type=int, choices=(1, 2), default=1, help="whose CA to read")
    args = parse_args(__doc__.split("\n")[0], steps=300, extra=extra)
    ensure_data(args)
    pipe = StackGANPipeline.from_pretrained(args.model) if args.model else StackGANPipeline.from_pretrained()
    if getattr(pipe.model, f"stage{args.stage}") is None:
        raise ValueError(f"{args.model} has no Stage-II generator; read its Stage-I with --stage 1")
    splits = {}
    for split in ("train", "test"):
        dataset = build_dataset("shapes", args.data_dir, resolution=pipe.config.stage1_size,
                                encoder=pipe.text_encoder, split=split)
        captions, full = captions_of(dataset)
        splits[split] = (represent(pipe, args.stage, dataset.embeddings, seed=len(split)), captions, full)
    images = 4 if args.smoke else 200
    _, attributes = real_shapes(args.data_dir, "test", images, pipe.config.stage1_size)
    results = {"model": args.model or "bundled", "stage": args.stage, "probe_steps": args.steps,
               "train_captions": len(splits["train"][1]), "test_captions": len(splits["test"][1]),
               "readability": readability(splits["train"], splits["test"], args.steps),
               "swap_images": len(attributes), "swap_distance": swap_distances(pipe, args.stage, attributes)}
    save(args, f"q7_text_conditioning_stage{args.stage}", results)


if __name__ == "__main__":
    main()
