"""Stage-II's paired refinement loss (train.py --refine_weight).

The adversarial loss tells Stage-II only whether its whole image looks real. Here it also refines
real images, shrunk to Stage-I's size and spoiled the way Stage-I's drawings are (wobbly outlines,
blotchy colour, blur), and is told pixel by pixel what the real image was. A pattern's phase is
random in the data and cannot be read off a 64 px input, so each patch of the output is compared
with the real patch shifted (and turned by 90 degrees) to fit it best: any phase and stripe
direction is right, a flat colour is not.

Squared error rather than L1: on a near-identity mapping most pixels are already nearly right, and
L1's gradient (the sign of each pixel's error) is then dominated by those tiny errors' random signs;
trained to sharpen real 64 px images, Stage-II made no progress in 200 steps under L1, with or
without `stage2_image_every_block` (experiments/q13_stage2_sharpening.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def degrade(images: torch.Tensor, warp: float, blotch: float, generator: torch.Generator) -> torch.Tensor:
    """Spoil real images (B, 3, H, W) in [-1, 1] like a Stage-I drawing. `warp`: the largest
    displacement of a smooth random warp, in pixels (outlines wobble); `blotch`: the largest amplitude
    of smooth colour noise (the blotchy backgrounds Stage-I draws); half of the images are also
    blurred (shrunk to 3/8 to 3/4 of their size and back)."""
    b, _, h, w = images.shape
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    randn = lambda *shape: torch.randn(*shape, generator=generator)  # noqa: E731
    # A 6x6 field of displacements, smoothly interpolated: the outline bends, it does not fray.
    field = randn(b, 2, 6, 6) * rand(b, 1, 1, 1) * (2 * warp / w)
    field = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    grid = torch.stack([xs, ys], dim=-1)[None] + field
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)
    blurred = rand(b) < 0.5
    if blurred.any():
        size = int(w * (3 + 3 * rand(1).item()) / 8)
        small = F.interpolate(out[blurred], size=(size, size), mode="area")
        out[blurred] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    if blotch:
        stains = randn(b, 3, 5, 5) * rand(b, 1, 1, 1) * blotch
        out = out + F.interpolate(stains, size=(h, w), mode="bicubic", align_corners=False)
        out = out + 0.03 * rand(b, 1, 1, 1) * randn(*out.shape)
    return out.clamp(-1, 1)


@torch.no_grad()
def shift_aligned_target(output: torch.Tensor, target: torch.Tensor, shift: int, patch: int = 16) -> torch.Tensor:
    """The target, rebuilt patch by patch (`patch` px squares) from its copies shifted by -shift ..
    shift-1 px in x and y, each also turned by 90 degrees in place, whichever is nearest `output`
    in squared error (the loss's own measure). shift 0: the target itself.

    Each patch's squared error to every candidate is |candidate|^2 - 2 <output, candidate> (+ the
    same |output|^2 for all): the inner products are one grouped convolution of each output patch
    over its window of the target, three times faster on a CPU than comparing the 2 x (2 shift)^2
    candidates one by one, which cost Stage-II about 3 s a step at batch 16."""
    if shift == 0:
        return target
    b, c, h, w = target.shape
    if h % patch or w % patch:
        raise ValueError(f"refinement: image size {h}x{w} is not a multiple of the patch size {patch}")
    span, offsets = patch + 2 * shift, 2 * shift
    padded = F.pad(target, (shift, shift, shift, shift), mode="replicate")
    # Patch (i, j)'s window: the target's pixels within `shift` of it; the candidate shifted by
    # (dy, dx) is the window's square at (shift + dy, shift + dx).
    windows = padded.unfold(2, span, patch).unfold(3, span, patch).permute(0, 2, 3, 1, 4, 5)
    groups = b * (h // patch) * (w // patch)
    windows = windows.reshape(groups, c, span, span)
    tiles = output.unfold(2, patch, patch).unfold(3, patch, patch).permute(0, 2, 3, 1, 4, 5).reshape(groups, c, patch, patch)
    ones = torch.ones(1, 1, patch, patch, dtype=target.dtype, device=target.device)
    energy = F.conv2d(windows.pow(2).sum(1, keepdim=True), ones)[:, 0, :offsets, :offsets]
    # <output, turned candidate> = <output turned back, candidate>
    errors = [energy - 2 * F.conv2d(windows.reshape(1, groups * c, span, span), kernel.contiguous(),
                                    groups=groups)[0, :, :offsets, :offsets]
              for kernel in (tiles, tiles.rot90(-1, (-2, -1)))]
    best = torch.stack(errors, dim=-1).reshape(groups, -1).argmin(1)     # index = (dy * offsets + dx) * 2 + turned
    dy, dx, turned = best // (2 * offsets), (best // 2) % offsets, (best % 2).bool()
    steps = torch.arange(patch, device=target.device)
    chosen = windows[torch.arange(groups, device=target.device)[:, None, None, None],
                     torch.arange(c, device=target.device)[None, :, None, None],
                     (dy[:, None, None, None] + steps[:, None]), (dx[:, None, None, None] + steps)]
    chosen = torch.where(turned[:, None, None, None], chosen.rot90(1, (-2, -1)), chosen)
    return chosen.view(b, h // patch, w // patch, c, patch, patch).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def refinement_loss(refined: torch.Tensor, real: torch.Tensor, shift: int) -> torch.Tensor:
    """Mean squared error of Stage-II's refinements of degraded real images against the real images,
    each patch aligned as `shift_aligned_target` does."""
    return F.mse_loss(refined, shift_aligned_target(refined.detach().float(), real.float(), shift).to(refined.dtype))


_LUMA = (0.299, 0.587, 0.114)
GABOR_PERIODS, GABOR_ORIENTATIONS = (4.0, 6.0, 8.0), 8


def _gabor_bank(dtype, device) -> torch.Tensor:
    """(2 x periods x orientations, 1, K, K): even and odd Gabor filters, zero-mean, unit L1 norm."""
    size = 2 * int(max(GABOR_PERIODS)) + 1
    r = torch.arange(size, dtype=torch.float64) - size // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    filters = []
    for period in GABOR_PERIODS:
        envelope = torch.exp(-(x ** 2 + y ** 2) / (2 * (0.6 * period) ** 2))
        for o in range(GABOR_ORIENTATIONS):
            angle = torch.pi * o / GABOR_ORIENTATIONS
            phase = 2 * torch.pi * (x * torch.cos(torch.tensor(angle)) + y * torch.sin(torch.tensor(angle))) / period
            for wave in (torch.cos(phase), torch.sin(phase)):
                f = envelope * wave
                f = f - envelope * (f.sum() / envelope.sum())
                filters.append(f / f.abs().sum())
    bank = torch.stack(filters).view(len(GABOR_PERIODS), GABOR_ORIENTATIONS, 2, size, size)
    return bank.permute(2, 0, 1, 3, 4).reshape(-1, 1, size, size).to(device, dtype)


def patch_statistics(images: torch.Tensor, patch: int = 16) -> torch.Tensor:
    """(B, 33, H/patch, W/patch): what each `patch` px square of images (B, 3, H, W) holds regardless
    of where in it things lie: its mean colour (3; the tint), the covariance of its fine detail's
    colours (6; how strong a pattern is, and in which shade), and its luminance's local energy at
    periods of 4, 6 and 8 px in 8 directions, sorted per period (24; stripes load one direction,
    checks two, dots three or more, whichever way they turn; a texture's period shows in which row)."""
    b, _, h, w = images.shape
    if h % patch or w % patch:
        raise ValueError(f"patch_statistics: image size {h}x{w} is not a multiple of the patch size {patch}")
    pool = lambda x: F.avg_pool2d(x, patch)  # noqa: E731
    fine = images - F.avg_pool2d(images, 5, 1, 2, count_include_pad=False)
    pairs = [(i, j) for i in range(3) for j in range(i, 3)]
    covariance = pool(torch.stack([fine[:, i] * fine[:, j] for i, j in pairs], dim=1))
    luma = torch.einsum("bchw,c->bhw", images, images.new_tensor(_LUMA))[:, None]
    bank = _gabor_bank(images.dtype, images.device)
    responses = F.conv2d(F.pad(luma, [bank.shape[-1] // 2] * 4, mode="replicate"), bank)
    even, odd = responses.chunk(2, dim=1)
    energy = pool(even.pow(2) + odd.pow(2)).view(b, len(GABOR_PERIODS), GABOR_ORIENTATIONS, h // patch, w // patch)
    energy = energy.sort(dim=2, descending=True).values.flatten(1, 2)
    return torch.cat([pool(images), covariance, energy], dim=1)


# Each group's weight in statistics_loss: a tint 5% of the range off (0.01 squared, x 10, three
# channels) weighs about as much as a missing pattern's energies (checks: about 0.003 squared in
# all, x 100).
_STATISTIC_WEIGHTS = (10.0,) * 3 + (30.0,) * 6 + (100.0,) * 24


def statistics_loss(refined: torch.Tensor, real: torch.Tensor, patch: int = 16) -> torch.Tensor:
    """Squared error between the patch statistics of Stage-II's refinements and of the real images:
    a pattern at any phase and direction matches, a flat colour does not (EnhanceNet's texture loss,
    Sajjadi et al. 2017, on a Gabor bank's energies instead of VGG's features)."""
    weights = refined.new_tensor(_STATISTIC_WEIGHTS)[None, :, None, None]
    return ((patch_statistics(refined.float(), patch) - patch_statistics(real.float(), patch)).pow(2) * weights).mean()
