"""StackGAN networks (Zhang et al., ICCV 2017), as in the paper and StackGAN-Pytorch.

    Stage-I  G: text -> CA -> [c, z] -> fc -> 4x4 -> 4 up blocks -> 64x64 image
    Stage-I  D: 64x64 image -> 4 stride-2 convs -> 4x4 features (+ replicated condition) -> logit
    Stage-II G: 64x64 image -> encoder -> 16x16 (+ its own CA's c) -> joint conv -> residual
                blocks -> 4 up blocks -> 256x256 image
    Stage-II D: 256x256 image -> 6 stride-2 convs + 2 3x3 convs -> 4x4 -> conditional and
                unconditional logits

Discriminators return logits; the losses apply the sigmoid (StackGAN-Pytorch puts it in D and uses
BCELoss, which is the same function computed less stably).
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .config import StackGANConfig


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)


# Nearest x2 upsampling followed by a 3x3 convolution touches, for each output phase, only two of
# the three low-resolution rows (and columns): even output rows read rows (i-1, i, i), odd ones
# (i, i, i+1). PHASE_TAPS[a] maps the 3 kernel rows to the 3 low-resolution offsets (-1, 0, +1).
PHASE_TAPS = torch.tensor([
    [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]],  # even output rows/columns
    [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]],  # odd output rows/columns
])


# The same phases as 2x2 kernels: even outputs read low-resolution offsets (-1, 0), odd ones (0, +1).
PHASE_TAPS_2X2 = PHASE_TAPS[:, [0, 1]].clone()
PHASE_TAPS_2X2[1] = PHASE_TAPS[1, [1, 2]]


def phase_kernels_2x2(weight: torch.Tensor) -> torch.Tensor:
    """(2, 2, out, in, 2, 2): the 2x2 kernel of each output phase (a, b) of nearest-x2 + `weight`."""
    taps = PHASE_TAPS_2X2.to(weight)
    return torch.einsum("aru,oiuv,bsv->aboirs", taps, weight, taps)


def upsample_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  kernels: torch.Tensor | None = None) -> torch.Tensor:
    """conv3x3(upsample_nearest_x2(x), weight) computed as four 2x2 convolutions at low resolution.

    Exact (up to float rounding) with 4 instead of 9 multiply-adds per output: 2.25x less work in
    the layers where both generators spend most of theirs. The 2x2 kernels are derived from the
    3x3 weight on every call, so gradients reach the paper's 3x3 parameters and checkpoints keep
    their layout; inference passes them precomputed (`kernels`).
    """
    k = phase_kernels_2x2(weight) if kernels is None else kernels  # (2, 2, out, in, 2, 2)
    phases = [F.conv2d(F.pad(x, (1 - b, b, 1 - a, a)), k[a, b], bias) for a in (0, 1) for b in (0, 1)]
    out = torch.stack(phases, dim=2)                              # (B, out, 4, H, W)
    return F.pixel_shuffle(out.flatten(1, 2), 2)                  # (B, out, 2H, 2W)


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """The four low-resolution kernels of nearest-x2-upsample + `weight` (out, in, 3, 3).

    Returns (out * 4, in, 3, 3) ordered out-major then phase (a, b) row-major, the order
    `nn.PixelShuffle(2)` reads sub-pixels in, so conv(x, phase_kernels(W)) -> PixelShuffle(2)
    equals conv(upsample_nearest(x), W) exactly.
    """
    taps = PHASE_TAPS.to(weight)
    # k[o, i, a, b, r, s] = sum_{u, v} taps[a, r, u] * W[o, i, u, v] * taps[b, s, v]
    k = torch.einsum("aru,oiuv,bsv->oabirs", taps, weight, taps)
    out_channels, in_channels = weight.shape[:2]
    return k.reshape(out_channels * 4, in_channels, 3, 3)


class UpBlock(nn.Module):
    """x2 upsampling + 3x3 conv + BN + ReLU; with `condition_dim`, BN's output is scaled and shifted
    per channel by a linear map of the condition c (conditional BN), zero at init.

    "nearest": the paper's nearest-neighbour upsample then conv.
    "pixelshuffle": sub-pixel convolution (Shi et al., CVPR 2016): a 3x3 conv to 4x the channels
    at low resolution, then `nn.PixelShuffle(2)`. Initialised ICNR-style (Aitken et al. 2017): the
    four sub-pixel kernels of each output channel start as the four phase kernels of one 3x3
    kernel, so at init the block computes exactly nearest-upsample + conv (no checkerboard).
    Classic ICNR copies one kernel four times, which equals conv-then-upsample instead.
    """

    def __init__(self, in_channels: int, out_channels: int, upsample: str = "nearest", condition_dim: int = 0):
        super().__init__()
        self.upsample = upsample
        # nearest only: compute upsample + conv as 2x2 phase convolutions (see upsample_conv);
        # False runs the literal upsample-then-conv, for benchmarks and checks.
        self.phase_convolution = True
        # Inference copies (stackgan/fast.py) store the 2x2 kernels here, computed once, and use
        # them only for inputs at least phase_min_size wide.
        self.baked_kernels: torch.Tensor | None = None
        self.phase_min_size = 0
        factor = 4 if upsample == "pixelshuffle" else 1
        self.conv = conv3x3(in_channels, out_channels * factor)
        self.bn = nn.BatchNorm2d(out_channels)
        self.modulation = nn.Linear(condition_dim, 2 * out_channels) if condition_dim else None

    @torch.no_grad()
    def icnr_(self, weight: torch.Tensor | None = None) -> None:
        """Set the sub-pixel kernels from a nearest-block kernel (drawn N(0, 0.02) if None)."""
        out_channels = self.bn.num_features
        if weight is None:
            weight = torch.randn(out_channels, self.conv.in_channels, 3, 3) * 0.02
        self.conv.weight.copy_(phase_kernels(weight))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.upsample == "pixelshuffle":
            x = F.pixel_shuffle(self.conv(x), 2)
        elif self.phase_convolution and x.shape[-1] >= self.phase_min_size:
            x = upsample_conv(x, self.conv.weight, self.conv.bias, self.baked_kernels)
        else:
            x = self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
        x = self.bn(x)
        if self.modulation is not None:
            scale, shift = self.modulation(c)[:, :, None, None].chunk(2, dim=1)
            x = x * (1 + scale) + shift
        return F.relu(x)  # (B, out, 2H, 2W)


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus identity, then ReLU (Stage-II, after He et al. 2016)."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            conv3x3(channels, channels), nn.BatchNorm2d(channels), nn.ReLU(True),
            conv3x3(channels, channels), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.block(x))


# "leaky_logsigma" CA: the LeakyReLU's negative slope on fc's output (the TensorFlow code's).
CA_LEAKY_SLOPE = 0.2


class ConditioningAugmentation(nn.Module):
    """Conditioning augmentation (paper §3.1): c = mu(phi_t) + sigma(phi_t) * eps, eps ~ N(0, I).

    "relu_logvar" (StackGAN-Pytorch): fc -> ReLU -> [mu, log sigma^2].
    "leaky_logsigma" (the TensorFlow code): fc -> LeakyReLU(0.2) -> [mu, log sigma].
    Always returns (c, mu, logvar) so one KL function serves both.
    """

    def __init__(self, text_dim: int, condition_dim: int, activation: str = "relu_logvar", sample: bool = True):
        super().__init__()
        self.text_dim, self.condition_dim, self.activation = text_dim, condition_dim, activation
        self.sample = sample  # False: c = mu, the ablation without augmentation
        self.fc = nn.Linear(text_dim, condition_dim * 2)

    def forward(self, embedding: torch.Tensor, eps: torch.Tensor | None = None):
        if embedding.dim() != 2 or embedding.shape[1] != self.text_dim:
            raise ValueError(f"text embedding has shape {tuple(embedding.shape)}; this model expects "
                             f"(batch, {self.text_dim}) (config.text_dim={self.text_dim})")
        if self.activation == "relu_logvar":
            mu, logvar = F.relu(self.fc(embedding)).chunk(2, dim=1)
        else:
            mu, log_sigma = F.leaky_relu(self.fc(embedding), CA_LEAKY_SLOPE).chunk(2, dim=1)
            logvar = 2 * log_sigma
        if not self.sample:
            return mu, mu, logvar
        if eps is None:
            eps = torch.randn_like(mu)
        c = mu + torch.exp(0.5 * logvar) * eps
        return c, mu, logvar


# config.texture_zero_mean: the window of the local mean taken off the textures, about the longest
# period the texture bank starts with (10 px).
ZERO_MEAN_WINDOW = 9


class TextureSynthesis(nn.Module):
    """Stage-II's source of fine detail: waves of the pixel position at a random per-image phase,
    shaped per pixel into texture maps, gated by the condition (which texture) and G's last
    features (where), and coloured per pixel from those features: an RGB term added to the image
    before its tanh.

    Why: G's convolutions are stationary, so over a flat region they can only draw a flat colour,
    and a D's (or any judge's) gradient on a flat region is flat too: a texture cannot grow out of
    nothing by gradient descent (experiments/q8_stage2_capacity.py). Here the textures exist from
    step 0 and start non-negative, so each has a mean: a judge that asks for another tint of a
    region (which is how a pattern shows at a glance, README "Where a pattern shows") pulls
    the textures' colour up from zero there, and the texture comes with it. The colour is a
    function of the features, not a constant, because a pattern's second colour depends on the
    first (darker stripes on yellow, lighter on black): a fixed colour per texture suits some
    captions and harms the rest, and training faded it for all. Fourier features of the position,
    as CIPS (Anokhin et al., CVPR 2021) feeds its per-pixel generator; the periods and
    orientations start as a filter bank's and are learnt.
    """

    def __init__(self, channels: int, condition_dim: int, orientations: int = 8, periods=(4.0, 5.4, 7.4, 10.0),
                 zero_mean: bool = False):
        super().__init__()
        self.zero_mean = zero_mean  # config.texture_zero_mean
        if orientations % 2:
            raise ValueError(f"orientations must be even (textures pair orthogonal waves), got {orientations}")
        self.orientations, self.periods = orientations, tuple(periods)
        waves = orientations * len(periods)
        self.frequency = nn.Parameter(torch.empty(waves, 2))  # cycles per pixel along x, y
        self.shape = nn.Sequential(nn.Conv2d(2 * waves, waves // 2, 1), nn.ReLU(True),
                                   nn.Conv2d(waves // 2, waves // 2, 1))
        self.gate = nn.Conv2d(channels, waves // 2, 1)
        self.gate_text = nn.Linear(condition_dim, waves // 2, bias=False)
        self.color = nn.Conv2d(channels, 3 * (waves // 2), 1)   # per pixel, an RGB colour per texture

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """A filter bank's start: waves at evenly spaced orientations and the given periods; each
        texture a ReLU of one pair of orthogonal waves of one period (stripes, grids, dots are such
        functions), passed on unmixed; every gate half open; every colour zero, so that G draws
        what it drew without the module (a trained G fine-tuned with it starts where it was)."""
        half = self.orientations // 2
        angle = torch.arange(self.orientations) * torch.pi / self.orientations
        direction = torch.stack([angle.cos(), angle.sin()], dim=1)                    # (orientations, 2)
        self.frequency.copy_(torch.cat([direction / p for p in self.periods]))
        waves = len(self.frequency)
        first = torch.zeros_like(self.shape[0].weight)                                # (textures, 2 waves, 1, 1)
        for t in range(waves // 2):
            period, o = divmod(t, half)
            pair = [period * self.orientations + o, period * self.orientations + o + half]
            for w in pair:  # its sin and cos channels
                first[t, [w, waves + w], 0, 0] = torch.randn(2) * 0.7
        self.shape[0].weight.copy_(first)
        nn.init.zeros_(self.shape[0].bias)
        nn.init.eye_(self.shape[2].weight[:, :, 0, 0])
        nn.init.zeros_(self.shape[2].bias)
        nn.init.normal_(self.gate.weight, 0.0, 0.02)
        nn.init.zeros_(self.gate.bias)
        nn.init.zeros_(self.gate_text.weight)
        nn.init.zeros_(self.color.weight)
        nn.init.zeros_(self.color.bias)

    def gates(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """(B, textures, H, W) in (0, 1): how far each texture is open, by G's features h (where) and
        the condition c (which)."""
        return torch.sigmoid(self.gate(h) + self.gate_text(c)[:, :, None, None])

    def forward(self, h: torch.Tensor, c: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W): textures for features h (B, C, H, W) and condition c (B, condition_dim).

        The phase is an offset of up to 64 px drawn from the first two components of Stage-II's
        CA noise eps (uniform through the normal CDF), so one seed draws one image; without eps
        (or with a 1-d condition), a fresh random offset."""
        b, _, height, width = h.shape
        seeded = eps is not None and eps.shape[1] >= 2
        offset = torch.special.ndtr(eps[:, :2]) if seeded else torch.rand(b, 2, device=h.device)
        y, x = torch.meshgrid(torch.arange(height, device=h.device, dtype=h.dtype),
                              torch.arange(width, device=h.device, dtype=h.dtype), indexing="ij")
        angle = 2 * torch.pi * torch.einsum("kd,dhw->khw", self.frequency, torch.stack([x, y]))   # (waves, H, W)
        phase = 2 * torch.pi * 64 * offset.to(h.dtype) @ self.frequency.T                   # (B, waves)
        # The first layer reads sin and cos of (angle + phase). By the angle-sum identities that is
        # the shared sin(angle), cos(angle) read with per-image weights: the (B, 2 x waves, H, W)
        # waves are never built, which made the module three times the cost of the rest of G.
        first = self.shape[0]
        w_sin, w_cos = first.weight[:, :, 0, 0].chunk(2, dim=1)                              # (textures, waves)
        cos, sin = phase.cos()[:, None], phase.sin()[:, None]
        weights = torch.cat([w_sin * cos - w_cos * sin, w_sin * sin + w_cos * cos], dim=2)  # (B, textures, 2 waves)
        waves = torch.cat([angle.sin(), angle.cos()]).flatten(1)                            # (2 waves, H x W)
        texture = (weights @ waves).view(b, -1, height, width) + first.bias[:, None, None]
        texture = self.shape[2](self.shape[1](texture))
        gated = self.gates(h, c) * texture
        color = self.color(h).view(b, gated.shape[1], 3, height, width)
        out = torch.einsum("bkhw,bkchw->bchw", gated, color)
        if self.zero_mean:
            out = out - F.avg_pool2d(out, ZERO_MEAN_WINDOW, 1, ZERO_MEAN_WINDOW // 2, count_include_pad=False)
        return out


class Stage1Generator(nn.Module):
    """Stage-I G: sketches the shape and colours at 64x64 from text and noise (paper §3.2)."""

    def __init__(self, config: StackGANConfig):
        super().__init__()
        self.config = config
        ngf = config.gf_dim * 8
        self.ca = ConditioningAugmentation(config.text_dim, config.condition_dim, config.ca_activation,
                                           config.conditioning_augmentation)
        self.fc = nn.Sequential(
            nn.Linear(config.z_dim + config.condition_dim, ngf * 4 * 4, bias=False),
            nn.BatchNorm1d(ngf * 4 * 4), nn.ReLU(True))
        self.up = nn.Sequential(*up_blocks(ngf, 4, config))
        self.to_image = nn.Sequential(conv3x3(ngf // 16, 3), nn.Tanh())
        init_weights(self, config.icnr)

    def forward(self, embedding: torch.Tensor, z: torch.Tensor, eps: torch.Tensor | None = None):
        """Returns (64x64 image in [-1, 1], mu, logvar)."""
        c, mu, logvar = self.ca(embedding, eps)
        h = self.fc(torch.cat([z, c], dim=1)).view(z.shape[0], -1, 4, 4)  # (B, 8 gf, 4, 4)
        h = run_up_blocks(self.up, h, c)                                    # (B, gf/2, 64, 64)
        return self.to_image(h), mu, logvar


class Stage2Generator(nn.Module):
    """Stage-II G: refines a Stage-I image at 256x256, re-reading the text (paper §3.3).

    It takes the Stage-I image rather than containing Stage-I, so each stage is saved once; no new
    noise enters here, the randomness comes from the Stage-I image and this stage's own CA.
    """

    def __init__(self, config: StackGANConfig):
        super().__init__()
        self.config = config
        ngf = config.gf_dim
        self.ca = ConditioningAugmentation(config.text_dim, config.condition_dim, config.ca_activation,
                                           config.conditioning_augmentation)
        self.encoder = nn.Sequential(
            conv3x3(3, ngf), nn.ReLU(True),
            nn.Conv2d(ngf, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.Conv2d(ngf * 2, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True))
        self.joint = nn.Sequential(
            conv3x3(ngf * 4 + config.condition_dim, ngf * 4), nn.BatchNorm2d(ngf * 4), nn.ReLU(True))
        self.residual = nn.Sequential(*[ResidualBlock(ngf * 4) for _ in range(config.r_num)])
        self.up = nn.Sequential(*up_blocks(ngf * 4, 4, config, 3 if config.stage2_image_every_block else 0))
        self.texture = (TextureSynthesis(ngf // 4, config.condition_dim, zero_mean=config.texture_zero_mean)
                        if config.g_texture else None)
        self.to_image = nn.Sequential(conv3x3(ngf // 4, 3), nn.Tanh())
        init_weights(self, config.icnr)
        if self.texture is not None:
            self.texture.reset_parameters()
        if config.stage2_image_skip:
            nn.init.zeros_(self.to_image[0].weight)  # at init: exactly the upsampled Stage-I image

    def forward(self, stage1_image: torch.Tensor, embedding: torch.Tensor, eps: torch.Tensor | None = None):
        """Returns (256x256 image in [-1, 1], mu, logvar)."""
        c, mu, logvar = self.ca(embedding, eps)
        h = self.encoder(stage1_image)                                      # (B, 4 gf, 16, 16)
        tiled = c[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
        h = self.residual(self.joint(torch.cat([h, tiled], dim=1)))         # (B, 4 gf, 16, 16)
        image = stage1_image if self.config.stage2_image_every_block else None
        h = run_up_blocks(self.up, h, c, image)                             # (B, gf/4, 256, 256)
        conv, tanh = self.to_image
        image = conv(h)
        if self.texture is not None:
            image = image + self.texture(h, c, eps)
        if self.config.stage2_image_skip:
            base = F.interpolate(stage1_image, size=h.shape[-2:], mode="bilinear", align_corners=False)
            image = image + torch.atanh(base.clamp(-0.999, 0.999))
        return tanh(image), mu, logvar


def up_blocks(channels: int, count: int, config: StackGANConfig, image_channels: int = 0) -> list[UpBlock]:
    """`count` up blocks, each doubling the resolution and halving the channels; `image_channels`:
    extra inputs for an image concatenated to each block's input (see run_up_blocks)."""
    condition_dim = config.condition_dim if config.g_conditioning == "every_block" else 0
    return [UpBlock((channels >> i) + image_channels, channels >> (i + 1), config.upsample, condition_dim)
            for i in range(count)]


def run_up_blocks(blocks: nn.Sequential, h: torch.Tensor, c: torch.Tensor,
                  image: torch.Tensor | None = None) -> torch.Tensor:
    """`image`: concatenated to every block's input, resized (antialiased) to its resolution."""
    for block in blocks:
        if image is not None:
            h = torch.cat([h, F.interpolate(image, size=h.shape[-2:], mode="bilinear", align_corners=False,
                                            antialias=image.shape[-1] > h.shape[-1])], dim=1)
        h = block(h, c)
    return h


class Discriminator(nn.Module):
    """Matching-aware discriminator shared by both stages (paper §3.2-3.3).

    `encode` maps an image to (B, 8 df, 4, 4) features; `logits` joins them with the condition
    replicated to 4x4 (conv3x3 -> BN -> LeakyReLU -> 4x4 conv), or with d_matching="inner_product"
    scores them as a projection discriminator on the pooled features ("spatial_inner_product": plus
    a term per 4x4 cell, each with its own weights); `uncond_logits` is StackGAN-Pytorch's
    extra image-only head of Stage-II. `condition` picks what text D sees (config.d_text_input).
    """

    def __init__(self, config: StackGANConfig, encoder: list[nn.Module], uncond_head: bool):
        super().__init__()
        self.config = config
        ndf, nef, norm = config.df_dim, config.condition_dim, config.d_norm
        self.encoder = nn.Sequential(*encoder)
        self.text_projection = None
        if config.d_text_input == "projection":
            self.text_projection = nn.Sequential(nn.Linear(config.text_dim, nef), nn.LeakyReLU(0.2, True))
        if config.d_matching == "concat":
            self.cond_head = nn.Sequential(
                *conv_norm_act(conv3x3(ndf * 8 + nef, ndf * 8), norm),
                nn.Conv2d(ndf * 8, 1, kernel_size=4, stride=4))
        else:  # a realness score plus how well the (pooled) features fit the text
            self.realness = nn.Linear(self.head_dim, 1)
            self.text_embedding = nn.Linear(nef, self.head_dim, bias=False)
        self.uncond_head = nn.Conv2d(ndf * 8, 1, kernel_size=4, stride=4) if uncond_head else None
        self.contrastive_image = self.contrastive_text = None
        if config.contrastive_weight > 0:  # both sides into one joint space of nef dimensions
            self.contrastive_image = nn.Linear(self.head_dim, nef)
            self.contrastive_text = nn.Linear(nef, nef)
        if config.contrastive_queue:  # earlier captions' embeddings, oldest overwritten first
            self.register_buffer("text_queue", torch.zeros(config.contrastive_queue, config.text_dim))
            self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
            self.register_buffer("queue_next", torch.zeros((), dtype=torch.long))
        init_weights(self)
        if norm == "spectral":
            apply_spectral_norm(self)

    @property
    def head_dim(self) -> int:
        """Size of the image vector the inner-product head and the contrastive loss read."""
        cells = 1 + 4 * 4 if self.config.d_matching == "spatial_inner_product" else 1
        return self.config.df_dim * 8 * cells

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 8 df, 4, 4) -> the image vector: the features summed over the cells, followed for
        "spatial_inner_product" by every cell in place. A linear layer on this sums a term shared
        by all cells (learns what is drawn wherever it is) and one of each cell's own (where)."""
        pooled = features.sum(dim=(2, 3))
        if self.config.d_matching == "spatial_inner_product":
            return torch.cat([pooled, features.flatten(1)], dim=1)
        return pooled

    def condition(self, embedding: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """The text condition D sees: G's detached mu, or D's own projection of the embedding."""
        if self.text_projection is None:
            return mu.detach()
        return self.text_projection(embedding)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(image)  # (B, 8 df, 4, 4)

    def logits(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        if self.config.d_matching != "concat":
            h = self.pool(features)
            return self.realness(h).view(-1) + (self.text_embedding(condition) * h).sum(dim=1)
        c = condition[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        return self.cond_head(torch.cat([features, c], dim=1)).view(-1)

    def similarity(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """(B, B + queued) cosine similarities of every image (rows) with every condition and then
        every queued caption (columns)."""
        if self.config.contrastive_queue:
            queued = self.text_queue[:int(self.queue_filled)]
            condition = torch.cat([condition, self.condition(queued, None)])
        image, text = self.joint_embeddings(features, condition)
        return image @ text.t()

    def joint_embeddings(self, features: torch.Tensor, condition: torch.Tensor):
        """Unit vectors of images and conditions in the contrastive heads' joint space."""
        return (F.normalize(self.contrastive_image(self.pool(features)), dim=1),
                F.normalize(self.contrastive_text(condition), dim=1))

    @torch.no_grad()
    def enqueue(self, embedding: torch.Tensor) -> None:
        """Add a batch's caption embeddings to the contrastive queue (no-op without one)."""
        if not self.config.contrastive_queue:
            return
        size = len(self.text_queue)
        slots = (self.queue_next + torch.arange(len(embedding), device=embedding.device)) % size
        self.text_queue[slots[-size:]] = embedding[-size:].to(self.text_queue.dtype)
        self.queue_next.copy_((self.queue_next + len(embedding)) % size)
        self.queue_filled.copy_(torch.clamp(self.queue_filled + len(embedding), max=size))

    def unconditional_logits(self, features: torch.Tensor) -> torch.Tensor | None:
        return None if self.uncond_head is None else self.uncond_head(features).view(-1)

    def forward(self, image: torch.Tensor, condition: torch.Tensor):
        """(conditional logits, unconditional logits or None) for matching (image, condition)."""
        features = self.encode(image)
        return self.logits(features, condition), self.unconditional_logits(features)


def conv_norm_act(conv: nn.Conv2d, norm: str, batch_norm: bool = True) -> list[nn.Module]:
    """conv [-> BN] -> LeakyReLU(0.2); BN is dropped when D is spectrally normalised."""
    layers = [conv]
    if batch_norm and norm == "batch":
        layers.append(nn.BatchNorm2d(conv.out_channels))
    return layers + [nn.LeakyReLU(0.2, True)]


def down_convs(df_dim: int, count: int, norm: str, stem: bool = False) -> list[nn.Module]:
    """`count` stride-2 4x4 convs from RGB: df, 2 df, 4 df, ... (no BN on the first, as DCGAN),
    after a full-resolution 3x3 conv to df channels if `stem` (config.d_stem)."""
    layers, channels = [], 3
    if stem:
        layers, channels = conv_norm_act(conv3x3(3, df_dim), norm, batch_norm=False), df_dim
    for i in range(count):
        out = df_dim << i
        layers += conv_norm_act(nn.Conv2d(channels, out, 4, 2, 1, bias=False), norm, batch_norm=i > 0)
        channels = out
    return layers


class Stage1Discriminator(Discriminator):
    """64x64 -> 4x4 with four stride-2 convs."""

    def __init__(self, config: StackGANConfig):
        super().__init__(config, down_convs(config.df_dim, 4, config.d_norm, config.d_stem), uncond_head=False)


class Stage2Discriminator(Discriminator):
    """256x256 -> 4x4 with six stride-2 convs, then 3x3 convs 32 df -> 16 df -> 8 df."""

    def __init__(self, config: StackGANConfig):
        ndf, norm = config.df_dim, config.d_norm
        encoder = (down_convs(ndf, 6, norm, config.d_stem)
                   + conv_norm_act(conv3x3(ndf * 32, ndf * 16), norm)
                   + conv_norm_act(conv3x3(ndf * 16, ndf * 8), norm))
        super().__init__(config, encoder, uncond_head=config.stage2_uncond_head)


def added_by_flags(generator: nn.Module, tensors: dict) -> dict:
    """The generator's tensors that `tensors` lacks and that a flag adds to a network otherwise the
    same (--g_conditioning every_block's modulation maps, --g_texture's texture module): a model
    trained without the flag can start a run with it, the new parts at their own init."""
    return {k: v for k, v in generator.state_dict().items()
            if k not in tensors and (k.startswith("texture.") or ".modulation." in k)}


def widened_by_flags(generator: nn.Module, tensors: dict) -> dict:
    """--stage2_image_every_block on a Stage-II trained without it: `tensors`' up-block kernels with
    zero weights appended for the three image inputs (run_up_blocks concatenates the image last),
    so the network starts computing exactly what it computed."""
    if not generator.config.stage2_image_every_block:
        return {}
    widened = {}
    for key, ours in generator.state_dict().items():
        theirs = tensors.get(key)
        if (key.startswith("up.") and key.endswith(".conv.weight") and theirs is not None
                and theirs.shape[1] + 3 == ours.shape[1] and theirs.shape[0] == ours.shape[0]):
            widened[key] = torch.cat([theirs, theirs.new_zeros(theirs.shape[0], 3, *theirs.shape[2:])], dim=1)
    return widened


@torch.no_grad()
def init_weights(module: nn.Module, icnr: bool = True) -> None:
    """DCGAN / StackGAN init: conv and linear N(0, 0.02), BN gamma N(1, 0.02), biases 0; ICNR for
    pixelshuffle blocks unless `icnr` is False."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.normal_(0.0, 0.02)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.weight.normal_(1.0, 0.02)
            m.bias.zero_()
    for m in module.modules():
        if icnr and isinstance(m, UpBlock) and m.upsample == "pixelshuffle":
            m.icnr_()
        if isinstance(m, UpBlock) and m.modulation is not None:
            nn.init.zeros_(m.modulation.weight)
            nn.init.zeros_(m.modulation.bias)


def apply_spectral_norm(module: nn.Module) -> None:
    """Spectral normalisation (Miyato et al. 2018) of every conv and linear weight."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(m)


def set_phase_convolution(module: nn.Module, enabled: bool) -> nn.Module:
    """Switch every nearest up block between the 2x2 phase convolutions (default) and the literal
    upsample-then-3x3-conv of the paper. Both compute the same function."""
    for m in module.modules():
        if isinstance(m, UpBlock):
            m.phase_convolution = enabled
    return module
