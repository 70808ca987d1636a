"""Q15: does Stage-II learn the tint and the texture from the refinement loss alone?

q12 showed what the pattern bar needs from Stage-II: the drawn object recoloured to its palette
colour with the pattern on it reads 90.5%. The refinement loss (`stackgan/refinement.py`) asks
for exactly that, pixel by pixel, on real images shrunk and spoiled like Stage-I drawings: the
real colour, and (patch by patch, at the best shift) the real pattern. In a GAN run it shares G
with the adversarial loss, and 1,000 steps of it moved nothing (README, "The tint, told to
Stage-II"). Here it is all there is: the model's Stage-II with `g_texture` added (textures started
with `--texture_start`'s faint shades, the CA's sigma restarted at 0.1, as train.py's flags do),
the refinement loss on real training images read with their first (full) caption, no D. The
texture module and the CA train `--texture_lr_scale` times faster than the rest.

Every `--every` steps, on the first (full) captions of `--samples` test images, the oracle reads the
pattern (accuracy and confusion; rows: the caption's plain / striped / dotted / checkered,
columns: what the oracle reads) off Stage-II's refinements of
  - the real image area-shrunk to 64 px, unspoiled (bilinear upsampling reads ~80%, the tint);
  - the model's own Stage-I drawings (the same noise throughout);
the drawn object's tint error against the real image (q14's measure, mean over the images); and the
fine detail inside the real objects (RMS of the image minus its 5x5 local mean; the real 256 px
images' is the target, the bilinear upsampler's the start).

`--loss statistics` trains by each patch's statistics instead of its aligned pixels
(stackgan.refinement.statistics_loss); `--gate_onehot` is a probe that hands the texture gates the
caption's pattern one-hot; `--grids DIR` saves the first 8 refinements at each evaluation.

    python experiments/q15_refine_alone.py --steps 400            # ~40 min on one thread
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from common import ROOT, ensure_data, parse_args, pattern_scores, save
from q14_tint_precision import inside_colour

from stackgan import StackGANPipeline
from stackgan.data.dataset import build_dataset
from stackgan.data.folder import load_folder
from stackgan.data.problems import InputErrors
from stackgan.data.shapes import PATTERNS, parse_caption
from stackgan.metrics.shapes_oracle import load_shapes_oracle
from stackgan.data.shapes.drawing import _pattern_mask, shade
from stackgan.data.shapes.vocabulary import COLOR_RGB
from stackgan.models import Stage2Generator, TextureSynthesis
from stackgan.refinement import degrade, refinement_loss, statistics_loss

sys.path.insert(0, str(ROOT / "train"))
from train import restart_ca_sigma, show_textures  # noqa: E402


def options(parser) -> None:
    parser.add_argument("--model", default=str(ROOT / "demo" / "pretrained" / "shapes"))
    parser.add_argument("--every", type=int, default=100, help="evaluate every this many steps")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=4e-4)
    parser.add_argument("--texture_lr_scale", type=float, default=10.0)
    parser.add_argument("--gate_lr_scale", type=float, default=1.0,
                        help="the texture gates' caption term trains at this multiple of the texture module's rate "
                             "(it starts at zero, and Adam moves a weight about one learning rate a step)")
    parser.add_argument("--texture_start", type=float, default=0.05)
    parser.add_argument("--texture_zero_mean", action="store_true",
                        help="the textures as a zero-mean modulation (config.texture_zero_mean)")
    parser.add_argument("--refine_warp", type=float, default=1.5)
    parser.add_argument("--refine_blotch", type=float, default=0.15)
    parser.add_argument("--refine_shift", type=int, default=4)
    parser.add_argument("--real_control_steps", type=int, default=125,
                        help="steps of the control on real images (the texture module alone), with and without "
                             "zero-mean textures")
    parser.add_argument("--tag", default="", help="saved as results/q15_refine_alone_<tag>.json")
    parser.add_argument("--isolated_steps", type=int, default=300,
                        help="steps of the control: the texture module alone, every pixel an object's")
    parser.add_argument("--loss", choices=("aligned", "statistics"), default="aligned",
                        help="the refinement loss: squared error at each patch's best shift, or squared error "
                             "of each patch's statistics (stackgan.refinement.statistics_loss)")
    parser.add_argument("--gate_onehot", action="store_true",
                        help="probe: the texture gates read the caption's pattern one-hot instead of the condition "
                             "(can the textures learn which one to draw, given a clean signal?)")
    parser.add_argument("--grids", default="", help="a folder: at each evaluation, a PNG of the first 8 test images (top row), their 64 px "
                        "versions refined (middle) and the refined Stage-I drawings (bottom)")
    parser.add_argument("--crop", type=int, default=256,
                        help="train on random crops this many px wide at 256 px (the network is convolutional; "
                             "128 costs a quarter of a step)")


def textured_stage2(model, args) -> Stage2Generator:
    """The model's Stage-II with the texture module added and the CA's sigma restarted."""
    config = dataclasses.replace(model.config, g_texture=True, texture_zero_mean=args.texture_zero_mean)
    generator = Stage2Generator(config)
    result = generator.load_state_dict(model.stage2.state_dict(), strict=False)
    if result.unexpected_keys or any(not k.startswith("texture.") for k in result.missing_keys):
        raise ValueError(f"{args.model}: its Stage-II does not fit the textured one ({result})")
    generator.texture.reset_parameters()
    with torch.no_grad():
        if args.texture_start:
            show_textures(generator, args.texture_start, 0)
        restart_ca_sigma(generator, 0.1)
    return generator.train()


def objects(images: torch.Tensor, corner: int) -> torch.Tensor:
    """(B, 1, H, W) 0/1: the pixels of real images (B, 3, H, W) in [-1, 1] away from the colour of
    their top-left `corner` x `corner` px (the background, unless an object covers it)."""
    background = images[:, :, :corner, :corner].mean((2, 3), keepdim=True)
    return ((images - background).abs().sum(1, keepdim=True) > 0.5).float()


def random_crop(small: torch.Tensor, target: torch.Tensor, crop: int, generator: torch.Generator):
    """The same random window of each 64 px input and its 256 px target (`crop` px at 256 px, on
    the 64 px grid)."""
    if crop % 64 or not 0 < crop <= 256:
        raise ValueError(f"--crop must be 64, 128, 192 or 256, got {crop}")
    top, left = (int(v) * 4 for v in torch.randint(0, (256 - crop) // 4 + 1, (2,), generator=generator))
    return (small[:, :, top // 4:(top + crop) // 4, left // 4:(left + crop) // 4],
            target[:, :, top:top + crop, left:left + crop])


def first_caption_patterns(captions: list, indices: torch.Tensor) -> torch.Tensor:
    """The pattern (an index into PATTERNS) that each image's first caption names."""
    return torch.tensor([PATTERNS.index(parse_caption(captions[int(i)][0])["pattern"]) for i in indices])


def isolated_textures(steps: int, seed: int = 0, size: int = 64, batch: int = 16) -> dict:
    """The control: Stage-II's texture module alone, trained by the same aligned loss to draw the
    dataset's patterns on a patch that is all object (a random palette colour; its features: the
    colour before the tanh, and ones), told the pattern as a one-hot condition. Returns the loss as
    a fraction of a flat output's plain (unaligned) squared error, over the first and the last 20
    steps; the alignment alone puts a flat output below 1 (about 0.75-0.8 here), so what the texture
    learnt is the fall from the first figure."""
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    texture = TextureSynthesis(8, len(PATTERNS))
    texture.reset_parameters()
    optimizer = torch.optim.Adam(texture.parameters(), lr=1e-2, betas=(0.5, 0.999))
    colours = np.array(list(COLOR_RGB.values()), dtype=np.float32)
    ratios = []
    for _ in range(steps):
        rgb = colours[rng.integers(len(colours), size=batch)]
        kinds = rng.integers(len(PATTERNS), size=batch)
        target = np.broadcast_to(rgb[:, None, None], (batch, size, size, 3)).copy()
        for i, kind in enumerate(kinds):
            if kind:
                tile = np.asarray(_pattern_mask(PATTERNS[kind], int(rng.integers(4)), 256, 1), dtype=np.float32) / 255
                y, x = rng.integers(0, tile.shape[0] - size, size=2)
                target[i] += (shade(rgb[i]).astype(np.float32) - rgb[i]) * tile[y:y + size, x:x + size, None]
        target = torch.from_numpy(target).permute(0, 3, 1, 2) / 127.5 - 1
        flat = torch.atanh(torch.from_numpy(rgb / 127.5 - 1).clamp(-0.999, 0.999))[:, :, None, None]
        features = torch.cat([flat.expand(-1, -1, size, size), torch.ones(batch, 5, size, size)], dim=1)
        condition = F.one_hot(torch.from_numpy(kinds), len(PATTERNS)).float()
        drawn = torch.tanh(flat + texture(features, condition, torch.randn(batch, 2, generator=generator)))
        loss = refinement_loss(drawn, target, 4)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ratios.append(loss.item() / F.mse_loss(torch.tanh(flat).expand_as(target), target).item())
    return {"steps": steps, "loss_over_flat_first_20": float(np.mean(ratios[:20])),
            "loss_over_flat_last_20": float(np.mean(ratios[-20:]))}


def real_control(loader, captions: list, steps: int, zero_mean: bool, crop: int = 128, seed: int = 0) -> dict:
    """The control on real training images: the texture module alone (G's other parts left out)
    added before the tanh to the real image shrunk to 64 px and upsampled (so the tint is already
    there, as in a Stage-I drawing), read with the image's pattern one-hot and the upsampled colour
    as its features, trained by the aligned loss on random `crop` px windows. Returns its loss as a
    fraction of the upsampler's, first and last 20 steps, and the texture's RMS inside the objects
    over the last 20."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    texture = TextureSynthesis(8, len(PATTERNS), zero_mean=zero_mean)
    texture.reset_parameters()
    optimizer = torch.optim.Adam(texture.parameters(), lr=1e-2, betas=(0.5, 0.999))
    if len(loader) == 0:
        raise ValueError("the control needs at least one full batch of training images")
    ratios, rms = [], []
    batches = (batch for _ in iter(int, 1) for batch in loader)   # epoch after epoch
    for batch in batches:
        small, target = random_crop(F.interpolate(batch["image"], size=(64, 64), mode="area"), batch["image"], crop,
                                    generator)
        upsampled = F.interpolate(small, size=target.shape[-2:], mode="bilinear", align_corners=False)
        flat = torch.atanh(upsampled.clamp(-0.999, 0.999))
        kinds = first_caption_patterns(captions, batch["index"])
        features = torch.cat([flat, torch.ones(len(flat), 5, *flat.shape[-2:])], dim=1)
        drawn = texture(features, F.one_hot(kinds, len(PATTERNS)).float(), torch.randn(len(flat), 2, generator=generator))
        loss = refinement_loss(torch.tanh(flat + drawn), target, 4)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ratios.append(loss.item() / refinement_loss(upsampled, target, 4).item())
        inside = objects(target, 2)
        rms.append(float((drawn.detach().pow(2).mean(1, keepdim=True) * inside).sum() / inside.sum().clamp(min=1)) ** 0.5)
        if len(ratios) == steps:
            break
    return {"steps": steps, "zero_mean": zero_mean, "loss_over_upsampler_first_20": float(np.mean(ratios[:20])),
            "loss_over_upsampler_last_20": float(np.mean(ratios[-20:])), "texture_rms_inside_last_20": float(np.mean(rms[-20:]))}


def main() -> None:
    args = parse_args(__doc__.split("\n")[0], steps=400, extra=options)
    if args.smoke:
        args.every, args.batch_size, args.isolated_steps, args.real_control_steps = 1, 2, 2, 2
    ensure_data(args)
    isolated = isolated_textures(args.isolated_steps) if args.isolated_steps else None
    print("the texture module alone:", isolated, flush=True)
    torch.manual_seed(0)
    pipe = StackGANPipeline.from_pretrained(args.model)
    model = pipe.model
    generator = textured_stage2(model, args)
    onehot = {"pattern": None}   # --gate_onehot: the patterns of the captions G reads now
    if args.gate_onehot:
        generator.texture.gate_text = torch.nn.Linear(len(PATTERNS), generator.texture.gate.out_channels, bias=False)
        torch.nn.init.zeros_(generator.texture.gate_text.weight)
        generator.texture.register_forward_pre_hook(
            lambda module, inputs: (inputs[0], F.one_hot(onehot["pattern"], len(PATTERNS)).float(), *inputs[2:]))
    gate = {id(p) for p in generator.texture.gate_text.parameters()}
    fast = {id(p) for p in [*generator.texture.parameters(), *generator.ca.parameters()]} - gate
    optimizer = torch.optim.Adam(
        [{"params": [p for p in generator.parameters() if id(p) not in fast | gate], "lr": args.learning_rate},
         {"params": [p for p in generator.parameters() if id(p) in fast], "lr": args.learning_rate * args.texture_lr_scale},
         {"params": [p for p in generator.parameters() if id(p) in gate],
          "lr": args.learning_rate * args.texture_lr_scale * args.gate_lr_scale}], betas=(0.5, 0.999))

    oracle = load_shapes_oracle()
    examples = load_folder(args.data_dir, "test", InputErrors("raise"))[:args.samples]
    captions = [e.captions[0] for e in examples]
    named = [parse_caption(c) for c in captions]
    targets = torch.tensor([PATTERNS.index(n["pattern"]) for n in named])
    real = torch.stack([torch.from_numpy(np.asarray(Image.open(e.image_path).convert("RGB").resize((256, 256)),
                                                    dtype=np.float32)).permute(2, 0, 1) for e in examples]) / 127.5 - 1
    real64 = F.interpolate(real, size=(64, 64), mode="area")
    embedding, _ = pipe.encode(captions)
    noise = pipe.sample_noise(len(captions), 1, 0)
    with torch.no_grad():
        completed = embedding if model.prior is None else model.prior(embedding, noise["u"][:, 0])
        stage1, _, _ = model.stage1.eval()(completed, noise["z"][:, 0], noise["eps1"][:, 0])
    eps2 = noise["eps2"][:, 0]

    def read(images: torch.Tensor) -> dict:
        predicted = oracle.predict(((images + 1) / 2).clamp(0, 1))["pattern"]
        return pattern_scores(torch.tensor([PATTERNS.index(p) for p in predicted]), targets)

    def tint_error(images: torch.Tensor) -> float:
        errors = []
        for attributes, drawn, truth in zip(named, images, real):
            pixels = [((x.permute(1, 2, 0).numpy() + 1) * 127.5) for x in (drawn, truth)]
            a, b = (inside_colour(p, attributes["background"]) for p in pixels)
            if a is not None and b is not None:
                errors.append(float(np.abs(a - b).mean() / 255))
        return float(np.mean(errors)) if errors else float("nan")

    # The real objects' pixels (away from the corner's background colour), where a texture belongs.
    inside = objects(real, 4)

    def detail(images: torch.Tensor) -> float:
        """How much fine detail the images have inside the real objects: the RMS of each image minus
        its 5x5 local mean there (the real images' is the target)."""
        fine = (images - F.avg_pool2d(images, 5, 1, 2, count_include_pad=False)).pow(2).mean(1, keepdim=True)
        return float(((fine * inside).sum() / inside.sum()).sqrt())

    @torch.no_grad()
    def refine(images: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Stage-II's refinements, and where its texture term went (RMS before the tanh, inside and
        outside the real objects; the gate's mean inside)."""
        seen = []
        hook = generator.texture.register_forward_hook(lambda module, inputs, output: seen.append((inputs, output)))
        generator.eval()
        out = []
        for i in range(0, len(images), 16):
            onehot["pattern"] = targets[i:i + 16]
            out.append(generator(images[i:i + 16], condition[i:i + 16], eps2[i:i + 16])[0])
        out = torch.cat(out)
        generator.train()
        hook.remove()
        texture = torch.cat([output for _, output in seen])
        gate = torch.cat([generator.texture.gates(h, c) for (h, c, _), _ in seen]).mean(1, keepdim=True)
        power = texture.pow(2).mean(1, keepdim=True)
        return out, {"inside": float(((power * inside).sum() / inside.sum()).sqrt()),
                     "outside": float(((power * (1 - inside)).sum() / (1 - inside).sum()).sqrt()),
                     "gate_inside": float((gate * inside).sum() / inside.sum())}

    def evaluate(step: int, losses: list[float]) -> dict:
        (refined_real, texture), (refined_drawn, _) = refine(real64, embedding), refine(stage1, completed)
        row = {"step": step, "loss": float(np.mean(losses)) if losses else None, "texture": texture,
               "real_64px_refined": read(refined_real), "real_64px_refined_detail": detail(refined_real),
               "stage1_refined": read(refined_drawn),
               "stage1_refined_tint_error": tint_error(refined_drawn)}
        if args.grids:
            k = min(8, len(real))
            rows = torch.cat([real[:k], refined_real[:k], refined_drawn[:k]])
            grid = rows.view(3, k, 3, 256, 256).permute(0, 3, 1, 4, 2).reshape(3 * 256, k * 256, 3)
            Path(args.grids).mkdir(parents=True, exist_ok=True)
            Image.fromarray(((grid + 1) * 127.5).clamp(0, 255).byte().numpy()).save(Path(args.grids) / f"step{step:05d}.png")
        print({k: (v.get("pattern", v) if isinstance(v, dict) else v) for k, v in row.items()}, flush=True)
        return row

    upsampled = F.interpolate(stage1, size=(256, 256), mode="bilinear", align_corners=False)
    real_upsampled = F.interpolate(real64, size=(256, 256), mode="bilinear", align_corners=False)
    results = {"model": args.model, "samples": len(captions), "isolated_textures": isolated,
               "baselines": {"real_256px": read(real), "real_256px_detail": detail(real),
                             "real_64px_bilinear": read(real_upsampled),
                             "real_64px_bilinear_detail": detail(real_upsampled),
                             "stage1_bilinear": read(upsampled),
                             "stage1_bilinear_tint_error": tint_error(upsampled)},
               "steps": [evaluate(0, [])]}
    dataset = build_dataset("shapes", args.data_dir, resolution=256, encoder=pipe.text_encoder,
                            wrong_image="none", first_caption=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    # Its own batches and random numbers, so that the run below is the same with or without it.
    control_loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                                 generator=torch.Generator().manual_seed(2))
    with torch.random.fork_rng():
        results["real_control"] = [real_control(control_loader, dataset.captions, args.real_control_steps, zero_mean)
                                   for zero_mean in (False, True) if args.real_control_steps]
    print("the texture module alone on real images:", results["real_control"], flush=True)
    spoil = torch.Generator().manual_seed(1)
    step, losses, started = 0, [], time.time()
    while step < args.steps:
        for batch in loader:
            target = batch["image"]
            small = degrade(F.interpolate(target, size=(64, 64), mode="area"), args.refine_warp,
                            args.refine_blotch, spoil)
            if args.crop < 256:
                small, target = random_crop(small, target, args.crop, spoil)
            eps = torch.randn(len(target), model.config.condition_dim, generator=spoil)
            if args.gate_onehot:
                onehot["pattern"] = first_caption_patterns(dataset.captions, batch["index"])
            refined, _, _ = generator(small, model.standardize(batch["first_embedding"]), eps)
            loss = (statistics_loss(refined, target) if args.loss == "statistics"
                    else refinement_loss(refined, target, args.refine_shift))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            losses.append(loss.item())
            if step % args.every == 0 or step == args.steps:
                results["steps"].append(evaluate(step, losses))
                losses = []
            if step >= args.steps:
                break
    results["seconds_per_step"] = round((time.time() - started) / max(step, 1), 2)
    save(args, "q15_refine_alone" + (f"_{args.tag}" if args.tag else ""), results)


if __name__ == "__main__":
    main()
