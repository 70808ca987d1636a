"""Train StackGAN Stage-I, then Stage-II, with Accelerate (one process, several, or several machines).

    accelerate launch train/train.py --stage 1 --dataset shapes --data_dir data/shapes --output_dir runs/s1
    accelerate launch train/train.py --stage 2 --stage1_model runs/s1 --dataset shapes \
        --data_dir data/shapes --output_dir runs/s2

One step: draw noise -> G makes a batch -> D step (matching-aware loss + stabilisers) -> G step
(adversarial + KL) -> EMA -> log / checkpoint / validation images. Stage-II chains the frozen
Stage-I generator (under no_grad) into its generator, as the paper trains it.

Exact resume: the noise of every step and the data order are functions of (seed, step) and
(seed, epoch), so a run resumed from `checkpoint-N` continues with the very tensors the
uninterrupted run would have used.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import shlex
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration

from stackgan import (ExponentialMovingAverage, StackGANConfig, StackGANModel, StackGANPipeline,
                      Stage1Discriminator, Stage2Discriminator)
from stackgan.config import CHOICES
from stackgan.checkpoint import load_checkpoint, load_discriminator, resolve_checkpoint, save_checkpoint
from stackgan.data import build_dataset
from stackgan.hub import resolve_model_folder, upload_model_folder
from stackgan.images import make_grid
from stackgan.losses import discriminator_objective, generator_objective
from stackgan.matcher import ImageTextMatcher, NearestCaptions
from stackgan.models import CA_LEAKY_SLOPE, added_by_flags, widened_by_flags
from stackgan.pipeline import verify_model_folder
from stackgan.refinement import degrade, refinement_loss, statistics_loss
from stackgan.text import TextEncoder
from stackgan.tracking import JSONLTracker

# Flags that set StackGANConfig fields of the same name (None = keep the preset's value); every
# string option in CHOICES is one, so a new option cannot be parsed and then silently dropped.
CONFIG_FLAGS = ("gf_dim", "df_dim", "r_num", "condition_dim", "z_dim", "icnr", "conditioning_augmentation",
                "stage2_uncond_head", "stage2_image_skip", "stage2_image_every_block", "g_texture", "texture_zero_mean", "d_stem",
                "captions_per_step", "kl_weight", "gp_weight", "mode_seeking_weight", "contrastive_weight", "contrastive_temperature", "contrastive_queue",
                "use_ema", "ema_decay") + tuple(CHOICES)
# What the Stage-II model must share with the Stage-I model it is chained to.
GENERATOR_SHAPE = ("text_encoder", "text_dim", "condition_dim", "z_dim", "gf_dim", "upsample", "ca_activation",
                   "g_conditioning")
DEFAULT_PROMPTS = {"shapes": ["a large red star on a white background", "a small blue circle at the top left",
                              "a green striped square on a black background", "a medium yellow heart"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train StackGAN (Stage-I or Stage-II).")
    p.add_argument("--config", help="YAML or JSON file of flag values; flags given on the command line win")
    p.add_argument("--stage", type=int, choices=(1, 2), default=1)
    p.add_argument("--dataset", choices=("shapes", "cub", "oxford", "coco", "folder"), default="shapes")
    p.add_argument("--data_dir", default="data/shapes")
    p.add_argument("--output_dir", default="runs/stackgan")
    p.add_argument("--preset", default="shapes", help="cub | coco | shapes | tiny")
    p.add_argument("--stage1_model", help="Stage-II: the Stage-I model (folder, checkpoint or Hub id)")
    p.add_argument("--text_encoder", default=None, help="sentence-transformers id or folder (default: the preset's)")
    p.add_argument("--on_error", choices=("raise", "skip"), default="raise", help="bad data files: stop or skip and count")
    # Optimisation
    p.add_argument("--train_batch_size", type=int, default=None, help="per device (default: the preset's)")
    p.add_argument("--gradient_accumulation_steps", type=int, default=1)
    p.add_argument("--max_train_steps", type=int, default=None, help="optimizer steps; overrides --num_train_epochs")
    p.add_argument("--num_train_epochs", type=int, default=100)
    p.add_argument("--max_train_minutes", type=float, default=None,
                   help="stop after this many minutes of this invocation, with a checkpoint and the model")
    p.add_argument("--learning_rate", type=float, default=None, help="G and D (paper: 2e-4)")
    p.add_argument("--g_learning_rate", type=float, default=None)
    p.add_argument("--d_learning_rate", type=float, default=None)
    p.add_argument("--lr_decay_epochs", type=int, default=None, help="halve both rates every N epochs (paper)")
    p.add_argument("--adam_beta1", type=float, default=None)
    p.add_argument("--adam_beta2", type=float, default=None)
    p.add_argument("--mixed_precision", choices=("no", "fp16", "bf16"), default="no")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataloader_num_workers", type=int, default=0)
    p.add_argument("--train_crop", choices=("random", "center"), default="random",
                   help="crop of the 76/64-resized training image: random (paper: augmentation) or center, "
                        "the evaluation view (Shapes: a random crop blurs the position the caption names)")
    # Model options and stabilisers (see README): default to the preset's values
    for name in ("gf_dim", "df_dim", "r_num", "condition_dim", "z_dim", "captions_per_step", "contrastive_queue"):
        p.add_argument(f"--{name}", type=int, default=None)
    for name in ("kl_weight", "gp_weight", "mode_seeking_weight", "contrastive_weight",
                 "contrastive_temperature", "ema_decay"):
        p.add_argument(f"--{name}", type=float, default=None)
    for name, allowed in CHOICES.items():  # the string options, with the values the config accepts
        p.add_argument(f"--{name}", choices=allowed, default=None)
    p.add_argument("--stage2_uncond_head", type=_bool, default=None)
    p.add_argument("--stage2_image_skip", type=_bool, default=None)
    p.add_argument("--stage2_image_every_block", type=_bool, default=None,
                   help="Stage-II's up blocks also read the Stage-I image (lets it place edges at 256 px)")
    p.add_argument("--g_texture", type=_bool, default=None, help="Stage-II adds gated periodic textures (patterns)")
    p.add_argument("--texture_zero_mean", type=_bool, default=None,
                   help="with --g_texture: each texture minus its local mean, a modulation that leaves the colour "
                        "under it (the tint Stage-I drew) as it is")
    p.add_argument("--d_stem", type=_bool, default=None, help="D starts with a full-resolution 3x3 conv (textures)")
    p.add_argument("--conditioning_augmentation", type=_bool, default=None, help="false: c = mu, no KL (ablation)")
    p.add_argument("--icnr", type=_bool, default=None, help="ICNR init of pixelshuffle blocks (default true)")
    p.add_argument("--use_ema", action="store_true", default=None)
    # Checkpoints, validation, logging
    p.add_argument("--checkpointing_steps", type=int, default=500)
    p.add_argument("--checkpoints_total_limit", type=int, default=None)
    p.add_argument("--resume_from_checkpoint", default=None, help='"latest" or a checkpoint folder')
    p.add_argument("--init_from", default=None,
                   help="start from a checkpoint folder's networks (G, D, EMA), or an exported model's generator "
                        "(folder or Hub id), with the discriminator it carries if that fits this run's D flags, else a fresh D; "
                        "fresh optimisers at step 0, "
                        "under this run's flags: fine-tuning with other settings (a resumable checkpoint wins)")
    p.add_argument("--matcher", default=None,
                   help="folder of a train/train_matcher.py image-text matcher: G is also rewarded for images it "
                        "places near their caption (AttnGAN's DAMSM loss, sentence level)")
    p.add_argument("--matcher_weight", type=float, default=1.0, help="weight of the --matcher loss")
    p.add_argument("--matcher_negatives", type=int, default=1024,
                   help="random training captions scored as extra negatives in the --matcher loss each step")
    p.add_argument("--matcher_hard_negatives", type=int, default=0,
                   help="per image, also the K training captions nearest its caption as --matcher negatives")
    p.add_argument("--texture_start", type=float, default=0.0,
                   help="with --g_texture: each texture starts as a faint shade of this amplitude (tanh space, "
                        "sign drawn per texture) instead of invisible, so a judge of detail can see it")
    p.add_argument("--texture_lr_scale", type=float, default=1.0,
                   help="with --g_texture: the texture module's gate on the caption (which starts at zero) "
                        "trains at this multiple of G's learning rate")
    p.add_argument("--ca_sigma", type=float, default=None,
                   help="fine-tuning: restart this stage's CA with sigma = S for every caption (its mu kept), "
                        "for a generator that learnt to ignore a condition drowned in noise")
    p.add_argument("--mode_seeking_space", choices=("pixels", "matcher"), default="pixels",
                   help="where --mode_seeking_weight measures how far two draws differ: in pixels, or in the "
                        "--matcher's image space (what is drawn, not how)")
    p.add_argument("--refine_weight", type=float, default=0.0,
                   help="Stage-II: weight of the paired refinement loss (real images, shrunk and spoiled like "
                        "Stage-I's, refined back; stackgan/refinement.py); 0: off")
    p.add_argument("--refine_warp", type=float, default=1.5, help="largest outline wobble of --refine_weight's inputs, px at 64")
    p.add_argument("--refine_blotch", type=float, default=0.15, help="largest colour noise of --refine_weight's inputs")
    p.add_argument("--refine_shift", type=int, default=4,
                   help="--refine_weight compares each 16 px patch with the real one shifted by up to this many px")
    p.add_argument("--refine_loss", choices=("aligned", "statistics"), default="aligned",
                   help="--refine_weight's measure: squared error with each 16 px patch at its best shift, or "
                        "squared error of each patch's statistics (tint, detail colour, Gabor energies; any "
                        "phase and direction of a texture fits: stackgan.refinement.statistics_loss)")
    p.add_argument("--refine_caption", choices=("drawn", "first"), default="drawn",
                   help="--refine_weight's caption: the batch's drawn one (as --prior completes it) or the "
                        "image's first (on Shapes the one naming all six attributes, so G is told the pattern "
                        "it must draw instead of guessing it from the 64 px tint)")
    p.add_argument("--paired_weight", type=float, default=0.0,
                   help="Stage-I: weight of the paired loss: G also draws each real image from one of its "
                        "captions (--paired_caption) and is scored by squared error against it; 0: off")
    p.add_argument("--paired_caption", choices=("first", "drawn"), default="first",
                   help="--paired_weight's caption: the image's first (on Shapes the one naming all six "
                        "attributes, so it fixes the image) or the batch's drawn one")
    p.add_argument("--paired_samples", type=int, default=1,
                   help="--paired_weight scores the nearest of K draws of G (the batch's noise and K-1 more): "
                        "a caption that leaves attributes open is met by some draw, not by their average")
    p.add_argument("--prior", default=None,
                   help="a model folder or Hub id with a caption prior (train/train_prior.py): G reads each caption "
                        "completed by it, as it will at inference; D, the matcher and the paired loss read the "
                        "caption itself. The prior stays frozen and the exported model carries it")
    p.add_argument("--d_warmup_steps", type=int, default=0,
                   help="G holds still for the first N steps while D learns: for --init_from with a fresh D")
    p.add_argument("--validation_prompts", nargs="+", default=None)
    p.add_argument("--validation_steps", type=int, default=500)
    p.add_argument("--num_validation_images", type=int, default=4)
    p.add_argument("--logging_steps", type=int, default=10)
    p.add_argument("--report_to", default="jsonl", help="jsonl | tensorboard | wandb | all (comma-separated)")
    # Hub
    p.add_argument("--push_to_hub", action="store_true")
    p.add_argument("--hub_model_id", default=None)
    p.add_argument("--hub_token", default=None)
    p.add_argument("--hub_private_repo", action="store_true")
    p.add_argument("--push_checkpoints", action="store_true", help="also upload the model at every checkpoint")

    args = p.parse_args(argv)
    if args.config:
        values = read_config_file(args.config, p)
        p.set_defaults(**values)
        args = p.parse_args(argv)
    args.command_line = list(sys.argv[1:] if argv is None else argv)  # for the model card
    return args


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")
    return text.lower() in ("true", "1", "yes")


def read_config_file(path: str, parser: argparse.ArgumentParser) -> dict:
    """Flag values from YAML/JSON; an unknown key is an error naming it and the file."""
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        values = yaml.safe_load(text) or {}
    else:
        values = json.loads(text)
    known = {a.dest for a in parser._actions}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown option(s) {unknown}")
    return values


class EpochShuffle(Sampler):
    """A permutation of the dataset that depends only on (seed, epoch): resumable exactly."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


class DiscriminatorStep(nn.Module):
    """D's objective as a module, so that DDP sees exactly one forward per D step."""

    def __init__(self, discriminator: nn.Module, config: StackGANConfig):
        super().__init__()
        self.discriminator, self.config = discriminator, config

    def forward(self, real, fake, embedding, mu, wrong=None):
        return discriminator_objective(self.config, self.discriminator, real, fake, embedding, mu, wrong)


def build_config(args, stage1: StackGANModel | None) -> StackGANConfig:
    """The preset with the flags applied; for Stage-II, checked against the Stage-I model."""
    overrides = {k: getattr(args, k) for k in CONFIG_FLAGS if getattr(args, k) is not None}
    if args.text_encoder:
        overrides["text_encoder"] = args.text_encoder
    if args.train_batch_size:
        overrides["batch_size"] = args.train_batch_size
    for stage in ("g", "d"):
        rate = getattr(args, f"{stage}_learning_rate") or args.learning_rate
        if rate is not None:
            overrides[f"{stage}_learning_rate"] = rate
    preset = StackGANConfig.from_preset(args.preset)
    overrides["adam_betas"] = (args.adam_beta1 if args.adam_beta1 is not None else preset.adam_betas[0],
                               args.adam_beta2 if args.adam_beta2 is not None else preset.adam_betas[1])
    if stage1 is None:
        return StackGANConfig.from_preset(args.preset, **overrides)
    # Stage-II shares the generator shape (and text encoder) of its Stage-I model.
    ours = StackGANConfig.from_preset(args.preset, **{**overrides, "text_dim": stage1.config.text_dim,
                                                      "text_encoder": stage1.config.text_encoder})
    theirs = stage1.config
    mismatched = [f"{k}: Stage-I model has {getattr(theirs, k)!r}, this run {getattr(ours, k)!r}"
                  for k in GENERATOR_SHAPE if getattr(theirs, k) != getattr(ours, k)]
    if mismatched:
        raise ValueError(f"--stage1_model {args.stage1_model} does not fit --preset {args.preset}: "
                         + "; ".join(mismatched))
    return ours


def check_args(args) -> None:
    """Refuse bad combinations before anything is loaded or written."""
    if args.report_to and "wandb" in args.report_to.replace("all", "wandb") and args.hub_token:
        raise ValueError("--report_to wandb with --hub_token would send the token to wandb's config; "
                         "log in with `hf auth login` instead of passing --hub_token")
    if args.max_train_minutes is not None and not args.max_train_minutes > 0:
        raise ValueError(f"--max_train_minutes must be > 0, got {args.max_train_minutes}")
    if args.refine_weight < 0 or args.refine_warp < 0 or args.refine_blotch < 0 or args.refine_shift < 0:
        raise ValueError("--refine_weight, --refine_warp, --refine_blotch and --refine_shift must be >= 0")
    if args.paired_weight < 0 or args.paired_samples < 1:
        raise ValueError(f"--paired_weight must be >= 0 and --paired_samples >= 1, got {args.paired_weight} "
                         f"and {args.paired_samples}")
    if args.paired_weight and args.stage != 1:
        raise ValueError("--paired_weight is a Stage-I loss (Stage-II's paired loss is --refine_weight)")
    if args.refine_caption == "first" and not args.refine_weight:
        raise ValueError("--refine_caption first needs --refine_weight > 0")
    if args.refine_loss != "aligned" and not args.refine_weight:
        raise ValueError(f"--refine_loss {args.refine_loss} needs --refine_weight > 0")
    if args.refine_weight and args.stage != 2:
        raise ValueError("--refine_weight is a Stage-II loss (it refines real images); use it with --stage 2")
    if args.d_warmup_steps < 0:
        raise ValueError(f"--d_warmup_steps must be >= 0, got {args.d_warmup_steps}")
    if args.matcher_weight <= 0:
        raise ValueError(f"--matcher_weight must be > 0, got {args.matcher_weight}")
    for name in ("matcher_negatives", "matcher_hard_negatives"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.matcher_hard_negatives and not args.matcher:
        raise ValueError("--matcher_hard_negatives needs --matcher (the matcher that scores them)")
    if args.texture_start < 0:
        raise ValueError(f"--texture_start must be >= 0, got {args.texture_start}")
    if not args.texture_lr_scale > 0:
        raise ValueError(f"--texture_lr_scale must be > 0, got {args.texture_lr_scale}")
    if args.ca_sigma is not None and not args.ca_sigma > 0:
        raise ValueError(f"--ca_sigma must be > 0, got {args.ca_sigma}")
    if args.mode_seeking_space == "matcher" and not args.matcher:
        raise ValueError("--mode_seeking_space matcher needs --matcher (whose image space it measures in)")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-name/stackgan-shapes)")
    if args.stage == 2 and not args.stage1_model:
        raise ValueError("--stage 2 needs --stage1_model (the folder or Hub id of a Stage-I model)")
    if not Path(args.data_dir).exists():
        raise FileNotFoundError(f"--data_dir {args.data_dir} does not exist"
                                + (" (make it with: python -m stackgan.data.shapes --out " + args.data_dir + ")"
                                   if args.dataset == "shapes" else ""))
    output = Path(args.output_dir)
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / f".write-test-{os.getpid()}"  # per process: ranks probe at once
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"--output_dir {output} is not writable: {error}") from None


def trackers(args) -> list:
    names = [n.strip() for n in (args.report_to or "").split(",") if n.strip()]
    if "all" in names:
        names = ["jsonl", "tensorboard", "wandb"]
    return [JSONLTracker("train", Path(args.output_dir) / "logs") if n == "jsonl" else n for n in names]


def seeded_generator(*entropy: int) -> torch.Generator:
    """A torch generator seeded by these numbers (seed, step, rank, ...): a resumed run draws the same."""
    state = np.random.SeedSequence(list(entropy)).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def step_noise(seed: int, micro_step: int, rank: int, batch: int, config: StackGANConfig, draws: int) -> list:
    """`draws` sets of (z, eps1, eps2) for one step, from a generator seeded by (seed, step, rank)."""
    generator = seeded_generator(seed, micro_step, rank)
    return [tuple(torch.randn(batch, d, generator=generator) for d in (config.z_dim, config.condition_dim,
                                                                          config.condition_dim))
            for _ in range(draws)]


def refinement_measure(args):
    """--refine_loss as a function of (refined, real images)."""
    if args.refine_loss == "statistics":
        return statistics_loss
    return lambda refined, real: refinement_loss(refined, real, args.refine_shift)


def refinement_inputs(real: torch.Tensor, size: int, args, micro_step: int, rank: int) -> torch.Tensor:
    """--refine_weight's inputs: the batch's real images at Stage-I's size, spoiled like a Stage-I
    drawing, from their own stream of (seed, step, rank)."""
    generator = seeded_generator(args.seed, micro_step, rank, 1)
    small = F.interpolate(real.detach().float().cpu(), size=(size, size), mode="area")
    return degrade(small, args.refine_warp, args.refine_blotch, generator).to(real.device, real.dtype)


@torch.no_grad()
def paired_inputs(generator: nn.Module, batch: dict, embedding: torch.Tensor, real: torch.Tensor, noise: tuple,
                  args, micro_step: int, rank: int, standardize) -> tuple:
    """--paired_weight's (embeddings, z, eps, weight). With --paired_samples K > 1, per real image the
    noise of whichever of K draws of G for its caption is nearest it in pixels: the batch's own and
    K - 1 from their own stream of (seed, step, rank). Scoring only the nearest draw (implicit maximum
    likelihood, Li & Malik 2018) lets a caption that leaves the size or the background open be met by
    some draw with that size or background, so G learns to vary them with the noise instead of
    drawing their average."""
    if args.paired_caption == "first":
        embedding = standardize(batch["first_embedding"])
    b, k = real.shape[0], args.paired_samples
    z, eps = noise[0][:b].to(real.device), noise[1][:b].to(real.device)
    if k > 1:
        stream = seeded_generator(args.seed, micro_step, rank, 2)
        z = torch.cat([z, torch.randn(b * (k - 1), z.shape[1], generator=stream).to(z)])
        eps = torch.cat([eps, torch.randn(b * (k - 1), eps.shape[1], generator=stream).to(eps)])
        # In train mode, as the scored forward runs: BatchNorm's batch statistics shape the drawing.
        drawn, _, _ = generator(embedding.repeat(k, 1), z, eps)
        distance = (drawn.float() - real.float().repeat(k, 1, 1, 1)).pow(2).flatten(1).mean(1)
        nearest = distance.view(k, b).argmin(0) * b + torch.arange(b, device=real.device)
        z, eps = z[nearest], eps[nearest]
    return embedding, z, eps, args.paired_weight


@torch.no_grad()
def completed_captions(prior: nn.Module | None, embedding: torch.Tensor, seed: int, micro_step: int,
                       rank: int) -> torch.Tensor | None:
    """--prior's completion of the batch's captions, with its noise from its own stream of
    (seed, step, rank); None without a prior."""
    if prior is None:
        return None
    u = torch.randn(embedding.shape[0], prior.noise_dim, generator=seeded_generator(seed, micro_step, rank, 3))
    return prior(embedding, u.to(embedding))


def batch_noise(noise: list, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, eps1, eps2) for one forward of all draws of `step_noise`: z of every draw, the
    condition's noise of the first repeated. Mode seeking compares G(c, z1) with G(c, z2): with
    the condition shared, only z can tell the draws apart, so G is pushed to use z (with eps drawn
    afresh, G can meet it through the noise in c, which it already uses)."""
    z = torch.cat([draw[0] for draw in noise]).to(device)
    eps1, eps2 = (noise[0][i].repeat(len(noise), 1).to(device) for i in (1, 2))
    return z, eps1, eps2


def out_of_time(accelerator, deadline: float) -> bool:
    """Whether any process has passed `deadline`; all processes agree, so all stop at one step."""
    late = torch.tensor(float(time.time() >= deadline), device=accelerator.device)
    return bool(accelerator.reduce(late, reduction="sum") > 0) if accelerator.num_processes > 1 else bool(late)


# Below this KL (per dimension, as logged) the CA condition is its prior N(0, I) and carries no text;
# healthy Stage-I runs log 0.1-0.8.
COLLAPSED_KL = 0.01
COLLAPSE_GRACE_STEPS = 200


def collapse_warning(config: StackGANConfig, stage: int, step: int, kl: float) -> str | None:
    """A message when conditioning augmentation has collapsed to its prior, else None.

    The KL term pulls mu to 0 and sigma to 1 from the first step; when nothing pushes back (raw
    unit-norm text embeddings, or Stage-II's image skip, whose zero-initialised output layer sends
    no gradient to the CA at first) the condition ends up as pure noise and the generator draws
    the same thing for every caption, with no error anywhere.
    """
    if not config.conditioning_augmentation or config.kl_weight == 0 or step < COLLAPSE_GRACE_STEPS \
            or kl >= COLLAPSED_KL:
        return None
    advice = ("train Stage-II with --kl_weight 0 (the KL term only acts in training)"
              if stage == 2 and config.stage2_image_skip else
              "lower --kl_weight, and keep the text embeddings standardised (the default)")
    return (f"warning: KL is {kl:.4f} at step {step}: conditioning augmentation has collapsed to its prior, "
            f"so the generator no longer sees the caption; {advice}")


def weights_fingerprint(module: nn.Module) -> str:
    """A short hash of a module's weights and buffers, to recognise the same model again."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def redacted_command(argv: list[str]) -> str:
    """The command that ran, for the model card, with the Hub token hidden."""
    words, hide = [], False
    for word in ["train/train.py", *argv]:
        words.append("***" if hide else word.split("=")[0] + "=***" if word.startswith("--hub_token=") else word)
        hide = word == "--hub_token"
    return "accelerate launch " + shlex.join(words)


def train_step(accelerator, config, generator, frozen_stage1, d_step, opt_g, opt_d, real, embedding, noise,
               wrong=None, check_finite=None, update_g: bool = True, matcher_loss=None,
               mode_seeking_features=None, refine=None, paired=None, completed=None) -> tuple[dict, dict]:
    """One StackGAN step (paper §3, Algorithm of StackGAN-Pytorch): G draws a batch; D step on the
    matching-aware loss; G step on adversarial + KL. `noise`: one or two (z, eps1, eps2) draws
    (two for the mode-seeking loss). `update_g` False: G's loss is computed (and logged) but G
    holds still (--d_warmup_steps). `matcher_loss`: fake images -> the frozen matcher's weighted
    loss, added to G's (--matcher). `mode_seeking_features`: images -> the features the mode-seeking
    distance is measured in (None: pixels). `refine`: (degraded real images, weight, loss(refined,
    real), embeddings or None) for Stage-II's paired refinement loss (--refine_weight); its branch reads
    those embeddings (--refine_caption first), or with None the captions G reads. `paired`: (embeddings, z, eps, weight) for
    Stage-I's paired loss (--paired_weight). `completed`: the captions as --prior completed them,
    which the generators read instead (D reads `embedding`). Returns D's and G's statistics."""
    b, device = real.shape[0], real.device
    z, eps1, eps2 = batch_noise(noise, device)
    read = embedding if completed is None else completed
    e = read.repeat(len(noise), 1)
    # Both mode-seeking draws go through one forward, so DDP sees one forward per step.
    if frozen_stage1 is None:
        if paired is None:
            fake, mu, logvar = generator(e, z, eps1)
        else:  # the paired draws ride in the same forward
            fake, mu, logvar = generator(*(torch.cat(pair) for pair in zip((e, z, eps1), paired[:3])))
    else:
        with torch.no_grad():
            stage1_image, _, _ = frozen_stage1(e, z, eps1)
        if refine is not None:  # the degraded real images ride in the same forward
            stage1_image = torch.cat([stage1_image, refine[0]])
            e, eps2 = torch.cat([e, read if refine[3] is None else refine[3]]), torch.cat([eps2, eps2[:b]])
        fake, mu, logvar = generator(stage1_image, e, eps2)
    drawn = len(noise) * b
    extra, fake, mu, logvar = fake[drawn:], fake[:drawn], mu[:drawn], logvar[:drawn]
    fake_2 = fake[b:] if len(noise) == 2 else None
    fake, mu, logvar = fake[:b], mu[:b], logvar[:b]

    d_loss, d_stats = d_step(real, fake, embedding, mu, wrong)
    if check_finite:
        check_finite("d_loss", d_loss)
    accelerator.backward(d_loss)
    opt_d.step()
    opt_d.zero_grad(set_to_none=True)

    discriminator = accelerator.unwrap_model(d_step).discriminator
    discriminator.requires_grad_(False)  # G's step must leave D's gradients empty
    g_loss, g_stats = generator_objective(config, discriminator, fake, embedding, mu, logvar,
                                          z[:b], fake_2, z[b:] if fake_2 is not None else None,
                                          mode_seeking_features)
    if matcher_loss is not None:
        term = matcher_loss(fake)
        g_loss = g_loss + term
        g_stats.update(matcher=term.detach(), g_loss=g_loss.detach())
    if refine is not None:
        term = refine[2](extra, real)
        g_loss = g_loss + refine[1] * term
        g_stats.update(refine=term.detach(), g_loss=g_loss.detach())
    if paired is not None:
        term = F.mse_loss(extra.float(), real.float())
        g_loss = g_loss + paired[3] * term
        g_stats.update(paired=term.detach(), g_loss=g_loss.detach())
    if check_finite:
        check_finite("g_loss", g_loss)
    accelerator.backward(g_loss)
    if update_g:
        opt_g.step()
    opt_g.zero_grad(set_to_none=True)
    discriminator.requires_grad_(True)
    discriminator.enqueue(embedding)  # only now: a batch's captions are never their own negatives
    return d_stats, g_stats


def matcher_term(matcher: ImageTextMatcher, weight: float, raw_embedding: torch.Tensor, negatives: torch.Tensor,
                 hard: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
    """--matcher's part of G's loss: the frozen matcher's InfoNCE of the fakes against the batch's
    captions, `negatives` and each fake's own `hard` ones (raw embeddings: the matcher standardises
    them with its own statistics). Without the extra negatives the loss stops pulling once an image
    is nearer its caption than the batch's 15 others, which differ in colour: details like texture
    never count; a caption's nearest neighbours differ from it in such a detail."""
    return weight * matcher.loss(fake.float(), raw_embedding.to(fake.device), negatives.to(fake.device),
                                 None if hard is None else hard.to(fake.device))


@torch.no_grad()
def show_textures(generator: nn.Module, amplitude: float, seed: int) -> None:
    """--texture_start: give each of Stage-II's textures a faint shade to start from (its colour
    bias: a grey of +amplitude or -amplitude in tanh space, the sign drawn per texture), where
    g_texture starts them invisible. An invisible texture has no detail for a judge of detail to
    read, and that judge's gradient on flat regions carries no pattern (README, "A matcher that
    reads detail only"); a visible one is read, and the judge then opens or closes its gate by
    caption."""
    texture = getattr(generator, "texture", None)
    if texture is None:
        raise ValueError("--texture_start needs --stage 2 with --g_texture true (the textures it shows)")
    signs = torch.randint(0, 2, (texture.color.out_channels // 3,), generator=torch.Generator().manual_seed(seed))
    texture.color.bias.copy_((amplitude * (2 * signs - 1).float()).repeat_interleave(3))


def generator_param_groups(generator: nn.Module, texture_lr_scale: float) -> list[dict]:
    """G's Adam parameter groups, each with its multiple of G's rate ("lr_scale"). With
    --texture_lr_scale K, Stage-II's texture gate on the caption trains K times
    faster. Why: Adam moves a weight about one learning rate per step whatever its gradient's size,
    and this gate starts at zero and must grow to gate logits of several units from a condition whose
    spread is well under one: at 4e-4 that takes thousands of steps (runs/s16/T6: gate logits
    within +-0.33 after 200 steps), while the rest of G is already trained. Only the gate: the
    textures' colour starts from --texture_start's shades and is tied to G's features, so it
    stays at G's rate."""
    if texture_lr_scale == 1:
        return [{"params": list(generator.parameters()), "lr_scale": 1.0}]
    texture = getattr(generator, "texture", None)
    if texture is None:
        raise ValueError("--texture_lr_scale needs --stage 2 with --g_texture true (the textures it speeds up)")
    fast = list(texture.gate_text.parameters())
    chosen = {id(p) for p in fast}
    return [{"params": [p for p in generator.parameters() if id(p) not in chosen], "lr_scale": 1.0},
            {"params": fast, "lr_scale": texture_lr_scale}]


@torch.no_grad()
def restart_ca_sigma(generator: nn.Module, sigma: float) -> None:
    """--ca_sigma: make the CA's sigma `sigma` for every caption (its log-sigma rows of fc: zero
    weights, a constant bias), keeping mu. Why: a Stage-II CA whose sigma outgrew the spread of
    its mu (the bundle's: sigma ~1.3 against a spread of 0.4 across captions) hands G a condition
    that is mostly noise; G learns to ignore it, and then no judge can teach G what the caption
    adds (a pattern), for G cannot tell captions apart. Shrinking sigma leaves such a G's images
    as they were (it ignores c) and gives it a readable condition."""
    ca = generator.ca
    if not ca.sample:
        raise ValueError("--ca_sigma needs conditioning augmentation (this model uses c = mu)")
    if ca.activation == "relu_logvar" and sigma < 1:
        raise ValueError(f"--ca_sigma {sigma}: a relu_logvar CA has sigma >= 1 (log-variance after a ReLU); "
                         "use --ca_activation leaky_logsigma")
    bias = math.log(sigma)
    if ca.activation == "relu_logvar":
        bias *= 2                          # that head outputs log sigma^2
    elif bias < 0:
        bias /= CA_LEAKY_SLOPE             # below zero the LeakyReLU scales it down
    ca.fc.weight[ca.condition_dim:] = 0
    ca.fc.bias[ca.condition_dim:] = bias


def matcher_negatives(dataset, count: int, seed: int, micro_step: int) -> torch.Tensor:
    """`count` raw caption embeddings of the training split, drawn afresh (and reproducibly: a
    resumed run draws the same) at each step."""
    rows = np.sort(np.random.default_rng((seed, micro_step, 7)).integers(len(dataset.embeddings), size=count))
    return torch.from_numpy(np.asarray(dataset.embeddings[rows], dtype=np.float32))


def is_checkpoint(source) -> bool:
    return (Path(source) / "state.json").is_file()


def init_networks(source, generator: nn.Module, discriminator: nn.Module, stage: int,
                  model: StackGANModel | None, model_discriminator: dict | None = None, log=print) -> dict:
    """Load --init_from's networks into this run's; returns the tensors loaded ("generator", and
    "discriminator" and "ema" where there are such). A training checkpoint gives G, D and the EMA
    generator; an exported model (`model`, a folder or Hub id) its generator, which also starts the
    EMA, and the D it carries (`model_discriminator`) where that fits this run's D flags: a D
    under other flags (another --d_matching, say) starts fresh, as it does for a model without one."""
    if model is not None:
        if model.stages < stage:
            raise ValueError(f"--init_from {source}: a {model.stages}-stage model has no Stage-{stage} generator")
        generator_tensors = getattr(model, f"stage{stage}").state_dict()
        tensors = {"generator": generator_tensors, "ema": generator_tensors}
        pairs = [("generator", generator)]
        if model_discriminator is None:
            log(f"--init_from {source}: the model carries no Stage-{stage} discriminator; D starts fresh")
        elif differ := mismatched(discriminator, model_discriminator):
            log(f"--init_from {source}: its Stage-{stage} discriminator was trained under other D flags "
                f"(tensors that differ: {differ[:5]}); D starts fresh")
        else:
            log(f"--init_from {source}: D continues from the model's Stage-{stage} discriminator")
            tensors["discriminator"] = model_discriminator
            pairs.append(("discriminator", discriminator))
    else:
        tensors, _, _ = load_checkpoint(source)
        pairs = [("generator", generator), ("discriminator", discriminator)]
    for stem, network in pairs:
        theirs = tensors.get(stem, {})
        if stem == "generator" and (added := added_by_flags(network, theirs)):
            log(f"--init_from {source}: it lacks {len(added)} generator tensors this run's flags add "
                f"({', '.join(sorted(added)[:3])}{', ...' if len(added) > 3 else ''}); they start at their init")
            theirs = tensors["generator"] = {**theirs, **added}
            if "ema" in tensors:
                tensors["ema"] = {**tensors["ema"], **added}
        if stem == "generator" and (widened := widened_by_flags(network, theirs)):
            log(f"--init_from {source}: --stage2_image_every_block widens its {len(widened)} up blocks; "
                "their image inputs start at zero weight")
            theirs = tensors["generator"] = {**theirs, **widened}
            if "ema" in tensors:
                tensors["ema"] = {**tensors["ema"], **widened_by_flags(network, tensors["ema"])}
        if differ := mismatched(network, theirs):
            raise ValueError(f"--init_from {source}: its {stem} does not fit this run's (stage, preset and "
                             f"network flags must match); tensors that differ: {differ[:5]}"
                             + (f" and {len(differ) - 5} more" if len(differ) > 5 else ""))
        network.load_state_dict(theirs)
    return tensors


def mismatched(network: nn.Module, tensors: dict) -> list[str]:
    """Names of the tensors that are missing on either side or differ in shape."""
    ours = network.state_dict()
    return sorted(k for k in ours.keys() | tensors.keys()
                  if k not in ours or k not in tensors or ours[k].shape != tensors[k].shape)


# What a model card shows of a run: enough to rerun it and to know what it cost.
RUN_RECORD = ("dataset", "seed", "steps", "wall_time", "command", "init_from")


def run_record(info: dict) -> dict:
    return {k: info[k] for k in RUN_RECORD if k in info}


def parent_record(source, model: StackGANModel | None = None, stage: int = 1) -> dict:
    """The --init_from run, for the card: its checkpoint (or model), steps, wall time, command and
    (when it was itself a fine-tune) its own parent, so the whole chain can be rerun."""
    if model is not None:  # a two-stage model's record is its Stage-II run's, with its Stage-I's inside
        info = model.training_info or {}
        return {"model": str(source), **run_record(info.get("stage1", {}) if stage == 1 and model.stages == 2 else info)}
    exported = Path(source) / "pipeline" / "config.json"  # every checkpoint writes its pipeline
    training = json.loads(exported.read_text()).get("training", {}) if exported.is_file() else {}
    return {"checkpoint": str(source), **run_record(training)}


def training_dataset(args, config: StackGANConfig, encoder):
    """The stage's training split, built (with its caches) under the run's data flags."""
    return build_dataset(args.dataset, args.data_dir, encoder=encoder,
                         resolution=config.stage1_size if args.stage == 1 else config.stage2_size,
                         captions_per_step=config.captions_per_step,
                         wrong_image="other_class" if config.wrong_image == "other_class" else "none",
                         crop=args.train_crop, seed=args.seed, on_error=args.on_error,
                         first_caption=(args.paired_weight > 0 and args.paired_caption == "first")
                         or (args.refine_weight > 0 and args.refine_caption == "first"))


def main(args: argparse.Namespace, hub_api=None) -> Path:
    """Run training; returns the output folder (a loadable model folder). `hub_api`: an HfApi."""
    started = time.time()
    check_args(args)
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(gradient_accumulation_steps=args.gradient_accumulation_steps,
                              mixed_precision=args.mixed_precision, log_with=trackers(args),
                              project_config=ProjectConfiguration(project_dir=str(output_dir),
                                                                  logging_dir=str(output_dir / "logs")))
    world = int(os.environ.get("WORLD_SIZE", 1))
    if accelerator.num_processes != world:
        # accelerate's `--multi_gpu` without a device to spread over starts N processes that each
        # believe they are alone: N copies of the same run writing the same files.
        raise RuntimeError(f"WORLD_SIZE={world} but this process sees {accelerator.num_processes} process(es); "
                           "on CPU launch with ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N")
    main_process = accelerator.is_main_process

    # --- model, data ---------------------------------------------------------------------------
    stage1_model = StackGANModel.from_pretrained(args.stage1_model) if args.stage == 2 else None
    config = build_config(args, stage1_model)
    prior, prior_record = None, None
    if args.prior:
        prior_source = StackGANModel.from_pretrained(args.prior)
        prior, prior_record = prior_source.prior, {"model": str(args.prior), **prior_source.training_info.get("prior", {})}
        if prior is None:
            raise ValueError(f"--prior {args.prior} has no caption prior (config.prior_noise_dim is 0); "
                             "train one with train/train_prior.py")
        config = StackGANConfig.from_dict({**config.to_dict(), **prior.config_fields()})
    resume = resolve_checkpoint(output_dir, args.resume_from_checkpoint) if args.resume_from_checkpoint else None
    saved = load_checkpoint(resume) if resume else None
    # A checkpoint from an older version lacks the options added since; it ran with their defaults.
    stored = StackGANConfig.from_dict(saved[2]["config"]).to_dict() if saved else None
    if saved and stored != config.to_dict():
        diff = sorted(k for k, v in config.to_dict().items() if stored.get(k) != v)
        raise ValueError(f"checkpoint {resume} was trained with a different config (keys {diff}); "
                         "resume with the same --preset and flags, or use a new --output_dir")
    # An exported model to fine-tune (--init_from a model folder or Hub id, not a checkpoint).
    init_folder = (resolve_model_folder(args.init_from, discriminators=True)
                   if args.init_from and not saved and not is_checkpoint(args.init_from) else None)
    init_model = StackGANModel.from_pretrained(init_folder) if init_folder else None
    matcher = ImageTextMatcher.from_pretrained(args.matcher).to(accelerator.device) if args.matcher else None
    if matcher is not None and matcher.config.text_dim != config.text_dim:
        raise ValueError(f"--matcher {args.matcher} reads {matcher.config.text_dim}-d caption embeddings, "
                         f"this run's text encoder gives {config.text_dim}")
    encoder = TextEncoder(config.text_encoder)
    with accelerator.main_process_first():  # rank 0 builds the caches, the others then read them
        dataset = training_dataset(args, config, encoder)
    nearest = (NearestCaptions(dataset.embeddings, matcher.embedding_mean, matcher.embedding_std)
               if args.matcher_hard_negatives else None)
    torch.manual_seed(args.seed)  # the initial weights; every later draw has its own seeded generator
    model = StackGANModel(config.to_dict(), stages=args.stage)
    if stage1_model is not None:
        model.stage1.load_state_dict(stage1_model.stage1.state_dict())
    if prior is not None:
        model.prior.load_state_dict(prior.state_dict())
        model.prior.requires_grad_(False)
    # The text statistics the generator learns with: a resumed run keeps its own (its checkpoint's
    # pipeline), Stage-II takes its Stage-I's, a fine-tune its exported model's; else the captions'.
    learnt = StackGANModel.from_pretrained(resume) if saved else stage1_model or init_model
    if learnt is not None:
        model.set_text_statistics(learnt.text_mean, learnt.text_std)
    else:
        model.set_text_statistics(dataset.embedding_mean, dataset.embedding_std)
    generator = model.stage1 if args.stage == 1 else model.stage2
    frozen_stage1 = None if args.stage == 1 else model.stage1.eval().requires_grad_(False)
    discriminator = (Stage1Discriminator if args.stage == 1 else Stage2Discriminator)(config)
    generator.train()
    betas = tuple(config.adam_betas)
    opt_g = torch.optim.Adam(generator_param_groups(generator, args.texture_lr_scale),
                             lr=config.g_learning_rate, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.d_learning_rate, betas=betas)
    initial = (None if saved or not args.init_from
               else init_networks(args.init_from, generator, discriminator, args.stage, init_model,
                                  load_discriminator(init_folder, args.stage) if init_folder else None,
                                  log=accelerator.print))
    ema = ExponentialMovingAverage(generator, config.ema_decay) if config.use_ema else None
    if ema is not None and initial is not None and "ema" in initial:
        ema.load_state_dict(initial["ema"])
    # The starts these flags set hold for the published average too: a checkpoint's EMA would
    # otherwise keep the old CA and textures for as long as its decay remembers them.
    for net in ([] if saved else [generator] + ([ema.model] if ema is not None else [])):
        if args.texture_start:
            show_textures(net, args.texture_start, args.seed)
        if args.ca_sigma is not None:
            restart_ca_sigma(net, args.ca_sigma)
    if saved:
        tensors, optimizers, _ = saved
        generator.load_state_dict(tensors["generator"])
        discriminator.load_state_dict(tensors["discriminator"])
        opt_g.load_state_dict(optimizers["generator"])
        opt_d.load_state_dict(optimizers["discriminator"])
        if ema is not None:
            ema.load_state_dict(tensors["ema"])

    sampler = EpochShuffle(len(dataset), args.seed)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, drop_last=True,
                        num_workers=args.dataloader_num_workers)
    if len(loader) == 0:
        raise ValueError(f"{len(dataset)} training images is less than one batch of {config.batch_size}")
    d_step = DiscriminatorStep(discriminator, config)
    generator, d_step, opt_g, opt_d, loader = accelerator.prepare(generator, d_step, opt_g, opt_d, loader)
    if frozen_stage1 is not None:
        frozen_stage1.to(accelerator.device)
    model.text_mean, model.text_std = model.text_mean.to(accelerator.device), model.text_std.to(accelerator.device)
    if model.prior is not None:
        model.prior.to(accelerator.device)
    if ema is not None:
        ema.model.to(accelerator.device)

    updates_per_epoch = math.ceil(len(loader) / args.gradient_accumulation_steps)
    max_steps = args.max_train_steps or args.num_train_epochs * updates_per_epoch
    num_epochs = math.ceil(max_steps / updates_per_epoch)
    state = saved[2] if saved else {"step": 0, "epoch": 0, "batches_in_epoch": 0, "train_seconds": 0.0}
    if initial is not None:
        state["init_from"] = parent_record(args.init_from, init_model, args.stage)
    if stage1_model is not None:
        # A Stage-II checkpoint only holds Stage-II; resuming it on another Stage-I would go on
        # silently with a generator trained on different inputs.
        fingerprint = weights_fingerprint(model.stage1)
        if state.setdefault("stage1_fingerprint", fingerprint) != fingerprint:
            raise ValueError(f"checkpoint {resume} trained Stage-II on another Stage-I model (weights "
                             f"{state['stage1_fingerprint']}) than --stage1_model {args.stage1_model} "
                             f"({fingerprint}); resume with that Stage-I model, or use a new --output_dir")
    prompts = args.validation_prompts or DEFAULT_PROMPTS.get(args.dataset) or [c[0] for c in dataset.captions[:4]]
    run_config = {k: v for k, v in vars(args).items() if k not in ("hub_token", "command_line")}
    accelerator.init_trackers("train", config={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                               for k, v in run_config.items()})

    total_batch = config.batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    accelerator.print("***** Running training *****\n"
                      f"  Stage = {args.stage} ({dataset.resolution} px, {args.train_crop} crops), preset = {config.preset}\n"
                      f"  Num examples = {len(dataset)}\n  Num epochs = {num_epochs}\n"
                      f"  Batch size per device = {config.batch_size}\n"
                      f"  Total train batch size (w. parallel & accumulation) = {total_batch}\n"
                      f"  Gradient accumulation steps = {args.gradient_accumulation_steps}\n"
                      f"  Total optimization steps = {max_steps}"
                      + (f"\n  Resuming from {resume} (step {state['step']})" if resume else ""))

    def export_model() -> StackGANModel:
        """The publishable model: the EMA generator when EMA is on, in eval mode, on the CPU."""
        exported = copy.deepcopy(model).cpu().eval()
        if ema is not None:
            getattr(exported, f"stage{args.stage}").load_state_dict(ema.state_dict())
        exported.training_info = {"dataset": args.dataset, "data_dir": str(args.data_dir), "seed": args.seed,
                                  "steps": state["step"], "stage": args.stage,
                                  "wall_time": f"{state['train_seconds'] / 60:.1f} min",
                                  "command": redacted_command(args.command_line)}
        if "init_from" in state:
            exported.training_info["init_from"] = state["init_from"]
        if stage1_model is not None:  # the frozen Stage-I's own record, so the card shows both runs
            exported.training_info["stage1"] = run_record(stage1_model.training_info)
        if prior_record is not None:
            exported.training_info["prior"] = prior_record
        return exported

    def validate() -> Path:
        pipe = StackGANPipeline(export_model(), text_encoder=encoder)
        out = pipe(prompts, num_images_per_prompt=args.num_validation_images, seed=args.seed, ca_mode="sample")
        grid_rows = out.stage1 if out.stage2 is None else [a + b for a, b in zip(out.stage1, out.stage2)]
        path = output_dir / "samples" / f"step-{state['step']:07d}.png"
        path.parent.mkdir(exist_ok=True)
        grid = make_grid(grid_rows, cell=64 if out.stage2 is None else 128)
        grid.save(path)
        for tracker in accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_image("samples", np.asarray(grid), state["step"], dataformats="HWC")
            elif tracker.name == "wandb":
                import wandb

                tracker.log({"samples": wandb.Image(grid)}, step=state["step"])
            else:
                tracker.log_images({"samples": path}, step=state["step"])
        return path

    def checkpoint() -> None:
        unwrapped_g = accelerator.unwrap_model(generator)
        unwrapped_d = accelerator.unwrap_model(d_step).discriminator
        tensors = {"generator": unwrapped_g.state_dict(), "discriminator": unwrapped_d.state_dict()}
        if ema is not None:
            tensors["ema"] = ema.state_dict()
        optimizers = {"generator": opt_g.state_dict(), "discriminator": opt_d.state_dict()}
        save_checkpoint(output_dir, state["step"], tensors, optimizers, {**state, "config": config.to_dict()},
                        lambda folder: StackGANPipeline(export_model()).save_pretrained(folder),
                        args.checkpoints_total_limit)

    def check_finite(name: str, value: torch.Tensor) -> None:
        value = accelerator.reduce(value.detach().float(), reduction="mean")
        if not torch.isfinite(value):
            raise FloatingPointError(f"{name} is {value.item()} at step {state['step'] + 1}; stopping without "
                                     "writing a checkpoint (lower the learning rate, or try --gan_loss hinge "
                                     "/ --d_norm spectral)")

    # --- the loop ------------------------------------------------------------------------------
    progress = tqdm(total=max_steps, initial=state["step"], disable=not main_process, desc=f"Stage-{args.stage}")
    draws = 2 if config.mode_seeking_weight > 0 else 1
    measure = refinement_measure(args)
    clock = time.time()
    deadline = clock + 60 * args.max_train_minutes if args.max_train_minutes else None
    logs = {}
    warned_collapse = False
    while state["step"] < max_steps:
        epoch = state["epoch"]
        dataset.set_epoch(epoch)
        decay = 0.5 ** (epoch // args.lr_decay_epochs) if args.lr_decay_epochs else 1.0
        for optimizer, rate in ((opt_g, config.g_learning_rate), (opt_d, config.d_learning_rate)):
            for group in optimizer.param_groups:
                group["lr"] = rate * decay * group.get("lr_scale", 1.0)
        batches = accelerator.skip_first_batches(loader, state["batches_in_epoch"]) if state["batches_in_epoch"] else loader
        # Accelerate's loaders count their own epochs and pass that count to our sampler at every
        # new iteration; a resumed run must tell them which epoch this is.
        batches.set_epoch(epoch)
        for batch in batches:
            micro_step = epoch * len(loader) + state["batches_in_epoch"]
            state["batches_in_epoch"] += 1
            real = batch["image"]
            embedding = model.standardize(batch["embedding"])
            noise = step_noise(args.seed, micro_step, accelerator.process_index, real.shape[0], config, draws)
            with accelerator.accumulate(generator, d_step):
                d_stats, g_stats = train_step(accelerator, config, generator, frozen_stage1, d_step, opt_g, opt_d,
                                              real, embedding, noise, batch.get("wrong_image"), check_finite,
                                              update_g=state["step"] >= args.d_warmup_steps,
                                              matcher_loss=None if matcher is None else partial(
                                                  matcher_term, matcher, args.matcher_weight, batch["embedding"],
                                                  matcher_negatives(dataset, args.matcher_negatives, args.seed, micro_step),
                                                  nearest(batch["embedding"], args.matcher_hard_negatives)
                                                  if nearest else None),
                                              mode_seeking_features=matcher.embed_images
                                              if args.mode_seeking_space == "matcher" else None,
                                              refine=(refinement_inputs(real, config.stage1_size, args, micro_step,
                                                                        accelerator.process_index),
                                                      args.refine_weight, measure,
                                                      model.standardize(batch["first_embedding"])
                                                      if args.refine_caption == "first" else None)
                                              if args.refine_weight else None,
                                              paired=paired_inputs(accelerator.unwrap_model(generator), batch,
                                                                   embedding, real, noise[0], args, micro_step,
                                                                   accelerator.process_index, model.standardize)
                                              if args.paired_weight else None,
                                              completed=completed_captions(model.prior, embedding, args.seed,
                                                                           micro_step, accelerator.process_index))
            if not accelerator.sync_gradients:
                continue
            state["step"] += 1
            if ema is not None:
                # The warm-up keeps random initial weights out of the average; weights from
                # --init_from are no such thing.
                ema.update(accelerator.unwrap_model(generator), None if "init_from" in state else state["step"])
            now = time.time()
            state["train_seconds"] += now - clock
            clock = now
            progress.update(1)
            if deadline is not None and out_of_time(accelerator, deadline):
                max_steps = state["step"]  # the checks below then save, validate and stop here
            if state["step"] % args.logging_steps == 0 or state["step"] == max_steps:
                stats = {**d_stats, **g_stats}
                values = accelerator.reduce(torch.stack([stats[k].float() for k in sorted(stats)]), reduction="mean")
                logs = {k: round(v, 4) for k, v in zip(sorted(stats), values.tolist())}
                logs["lr"] = opt_g.param_groups[0]["lr"]
                accelerator.log(logs, step=state["step"])
                progress.set_postfix({k: logs[k] for k in ("d_loss", "g_loss", "d_real", "d_fake", "kl")})
                if not warned_collapse and (message := collapse_warning(config, args.stage, state["step"], logs["kl"])):
                    accelerator.print(message)
                    warned_collapse = True
            if state["step"] % args.checkpointing_steps == 0 or state["step"] == max_steps:
                accelerator.wait_for_everyone()
                if main_process:
                    checkpoint()
                    if args.push_checkpoints and args.push_to_hub:
                        upload_model_folder(output_dir / f"checkpoint-{state['step']}" / "pipeline",
                                            args.hub_model_id, api=hub_api, token=args.hub_token,
                                            private=args.hub_private_repo,
                                            commit_message=f"Checkpoint at step {state['step']}")
            if main_process and (state["step"] % args.validation_steps == 0 or state["step"] == max_steps):
                validate()
            if state["step"] >= max_steps:
                break
        else:
            state["epoch"] += 1
            state["batches_in_epoch"] = 0
    progress.close()

    # --- publish -------------------------------------------------------------------------------
    accelerator.wait_for_everyone()
    if main_process:
        final = export_model()
        grid = validate()
        (output_dir / "samples.png").write_bytes(grid.read_bytes())
        final.training_info.update(sample_grid="samples.png", final_losses=logs,
                                   repo_id=args.hub_model_id or str(output_dir))
        StackGANPipeline(final).save_pretrained(output_dir)
        accelerator.print(f"Saved the model to {output_dir} ({time.time() - started:.0f} s)")
        if args.push_to_hub:
            verify_model_folder(output_dir, final)
            url = upload_model_folder(output_dir, args.hub_model_id, api=hub_api, token=args.hub_token,
                                      private=args.hub_private_repo, commit_message=f"StackGAN Stage-{args.stage}, "
                                      f"{state['step']} steps")
            accelerator.print(f"Pushed to {url}")
    accelerator.end_training()
    return output_dir


if __name__ == "__main__":
    main(parse_args())
