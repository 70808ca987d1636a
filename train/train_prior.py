"""Train the caption prior (stackgan/prior.py) of a trained StackGAN model, and save the model with it.

    python train/train_prior.py --model demo/pretrained/shapes --dataset shapes --data_dir data/shapes \
        --output_dir runs/shapes-prior

The generators stay as they are. The prior learns, per training caption, to draw completions
whose Stage-I condition mean lies near that of the image's first caption (on Shapes the one that
names all six attributes), by implicit maximum likelihood over --samples draws; a caption that is
itself the first one has one completion, itself, so there every draw is pulled to it. It reads
only the caption embeddings (the training caches), so a step takes milliseconds; checkpoints
(`checkpoint-<step>/`) resume exactly, since every draw comes from a generator seeded by
(seed, step). The output folder is the model with the prior added (`config.prior_noise_dim`),
its card recording this command, and the discriminators the input carried.
"""

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stackgan import StackGANModel, StackGANPipeline  # noqa: E402
from stackgan.checkpoint import (DISCRIMINATORS_FILE, load_checkpoint, resolve_checkpoint,  # noqa: E402
                                 save_checkpoint)
from stackgan.data import build_dataset  # noqa: E402
from stackgan.hub import resolve_model_folder  # noqa: E402
from stackgan.prior import CaptionPrior, prior_loss  # noqa: E402
from train import seeded_generator  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="model folder, train/ checkpoint's pipeline folder, or Hub id")
    p.add_argument("--dataset", choices=("shapes", "cub", "oxford", "coco", "folder"), default="shapes")
    p.add_argument("--data_dir", default="data/shapes")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--noise_dim", type=int, default=32, help="dims of the prior's noise u")
    p.add_argument("--hidden", type=int, default=512, help="width of the prior's two hidden layers")
    p.add_argument("--samples", type=int, default=32,
                   help="completions drawn per caption, of which the nearest is trained (implicit maximum likelihood)")
    p.add_argument("--max_train_steps", type=int, default=3000)
    p.add_argument("--train_batch_size", type=int, default=256)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--checkpointing_steps", type=int, default=500)
    p.add_argument("--resume_from_checkpoint", default=None, help='a checkpoint folder or "latest"')
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("noise_dim", "hidden", "samples", "max_train_steps", "train_batch_size", "checkpointing_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not args.learning_rate > 0:
        p.error(f"--learning_rate must be > 0, got {args.learning_rate}")
    return args


def caption_targets(dataset, model: StackGANModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(every training caption's standardised embedding, the Stage-I condition mean of its image's
    first caption, whether it is that first caption)."""
    embeddings = model.standardize(torch.from_numpy(np.array(dataset.embeddings, dtype=np.float32)))
    offsets = np.asarray(dataset.offsets)
    first = torch.from_numpy(np.repeat(offsets[:-1], np.diff(offsets)))
    with torch.no_grad():
        _, mean, _ = model.stage1.ca(embeddings[first])
    return embeddings, mean, first == torch.arange(len(first))


def with_prior(model: StackGANModel, prior: CaptionPrior, record: dict) -> StackGANModel:
    """A copy of `model` that carries `prior`, its run recorded under training["prior"]."""
    out = StackGANModel({**model.config.to_dict(), **prior.config_fields()}, stages=model.stages,
                        training={**model.training_info, "prior": record})
    # The model's own tensors, less any prior it had (which may be of another size).
    tensors = {k: v for k, v in model.state_dict().items() if not k.startswith("prior.")}
    out.load_state_dict({**tensors, **{f"prior.{k}": v for k, v in prior.state_dict().items()}})
    return out.eval()


def main(argv=None) -> Path:
    started = time.time()
    args = parse_args(argv)
    source = resolve_model_folder(args.model)
    model = StackGANModel.from_pretrained(source)
    if model.prior is not None:
        print(f"--model {args.model} already has a caption prior; training a new one in its place")
    pipe = StackGANPipeline(model)
    dataset = build_dataset(args.dataset, args.data_dir, resolution=model.config.stage1_size,
                            encoder=pipe.text_encoder, wrong_image="none", crop="center")
    embeddings, targets, is_first = caption_targets(dataset, model)
    condition_mean = model.stage1.ca.requires_grad_(False)

    torch.manual_seed(args.seed)
    prior = CaptionPrior(model.config.text_dim, args.noise_dim, args.hidden)
    optimizer = torch.optim.Adam(prior.parameters(), lr=args.learning_rate)
    output_dir = Path(args.output_dir)
    step, history, seconds = 0, [], 0.0
    resume = resolve_checkpoint(output_dir, args.resume_from_checkpoint) if args.resume_from_checkpoint else None
    if resume is not None:
        tensors, optimizers, state = load_checkpoint(resume)
        prior.load_state_dict(tensors["prior"])
        optimizer.load_state_dict(optimizers["prior"])
        # wall time over all invocations, as train.py records it
        step, history, seconds = state["step"], state["history"], state.get("seconds", 0.0)
        print(f"resumed from {resume} at step {step}")

    def loss_at(step: int) -> torch.Tensor:
        stream = seeded_generator(args.seed, step)
        rows = torch.randint(len(embeddings), (args.train_batch_size,), generator=stream)
        return prior_loss(lambda e: condition_mean(e)[1], prior, embeddings[rows], targets[rows],
                          args.samples, stream, every=is_first[rows])

    bar = tqdm(total=args.max_train_steps, initial=step, desc="caption prior", unit="step")
    while step < args.max_train_steps:
        loss = loss_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        history.append(round(loss.item(), 5))
        bar.update(1)
        bar.set_postfix(distance=f"{np.mean(history[-100:]):.4f}")
        if step % args.checkpointing_steps == 0 or step == args.max_train_steps:
            save_checkpoint(output_dir, step, {"prior": prior.state_dict()}, {"prior": optimizer.state_dict()},
                            {"step": step, "history": history, "seconds": seconds + time.time() - started},
                            write_pipeline=lambda folder: None, limit=2)
    bar.close()

    command = shlex.join(sys.argv[1:] if argv is None else [str(word) for word in argv])
    record = {"command": "python train/train_prior.py " + command, "dataset": args.dataset, "seed": args.seed, "steps": step,
              "wall_time": f"{(seconds + time.time() - started) / 60:.1f} min",
              "final_distance": round(float(np.mean(history[-100:])), 4)}
    StackGANPipeline(with_prior(model, prior, record)).save_pretrained(output_dir)
    if (source / DISCRIMINATORS_FILE).is_file():
        shutil.copy2(source / DISCRIMINATORS_FILE, output_dir / DISCRIMINATORS_FILE)
    print(json.dumps({"output_dir": str(output_dir), **record}))
    return output_dir


if __name__ == "__main__":
    main()
