"""One configuration for every StackGAN network, with named presets.

Widths follow the official code's names: `gf_dim` (GF_DIM), `df_dim` (DF_DIM), `condition_dim`
(CONDITION_DIM, the paper's N_c = 128), `z_dim` (N_z = 100), `r_num` (residual blocks in Stage-II).
Stage-I's generator starts at `gf_dim * 8` channels, as in StackGAN-Pytorch.

The defaults of every option reproduce StackGAN-Pytorch (hanzhanggit/StackGAN-Pytorch), whose
parameter counts the "cub" and "coco" presets match exactly; the TensorFlow code's variants and the
stabilisers are opt-in strings and weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

MINILM = "sentence-transformers/all-MiniLM-L6-v2"

# Allowed values of every string option, checked in __post_init__ so a typo fails at construction.
CHOICES = {
    "upsample": ("nearest", "pixelshuffle"),
    # "relu_logvar": StackGAN-Pytorch (fc -> ReLU -> [mu, log var]; the ReLU forces sigma >= 1).
    # "leaky_logsigma": the TensorFlow code (fc -> LeakyReLU(0.2) -> [mu, log sigma]).
    "ca_activation": ("relu_logvar", "leaky_logsigma"),
    # "generator_mu": D sees the generator's detached mu (Pytorch); "projection": D owns
    # fc(text) -> LeakyReLU (TensorFlow).
    "d_text_input": ("generator_mu", "projection"),
    # "in_batch_shift": wrong images are the batch rolled by one (Pytorch); "other_class": drawn
    # from another class by the data loader (TensorFlow); "nearest_text": each real image is paired
    # with the batch's other caption closest to its own (cosine of the text embeddings), a hard
    # negative: a random other caption almost always differs in colour or background, so D can
    # reject it without learning shape or texture, and G is then never asked for them.
    "wrong_image": ("in_batch_shift", "other_class", "nearest_text"),
    # How D's head matches image and text: "concat" (paper: condition replicated at 4x4, concatenated,
    # conv -> logit) or "inner_product" (projection discriminator, Miyato & Koyama 2018:
    # logit = w . h + <V c, h> on D's pooled features h), or "spatial_inner_product": plus the same
    # on each of the 4x4 cells with its own weights, so that D (and its contrastive loss) sees where
    # things are: sum pooling keeps what is drawn but not where, and "at the top left" is text too.
    "d_matching": ("concat", "inner_product", "spatial_inner_product"),
    # Where the generators read the condition c: "input" (paper: Stage-I concatenates it with z,
    # Stage-II with its 16x16 image features) or "every_block": also in every up block, as a
    # per-channel scale and shift after BN (conditional BN, de Vries et al. 2017; DF-GAN, Tao et
    # al. CVPR 2022, fuses the text in every block), so the text reaches every resolution directly
    # instead of only through the first layer. Zero-initialised: it starts as the paper's network.
    "g_conditioning": ("input", "every_block"),
    "d_norm": ("batch", "spectral"),
    "gan_loss": ("bce", "hinge"),
    "generator_loss": ("non_saturating", "saturating"),
    "gradient_penalty": ("none", "r1", "ma_gp"),
}


@dataclass
class StackGANConfig:
    """Every width, depth, option and loss weight of a StackGAN model."""

    preset: str = "custom"
    # Text conditioning
    text_encoder: str = MINILM
    text_dim: int = 384
    condition_dim: int = 128
    z_dim: int = 100
    # Widths and depth
    gf_dim: int = 128
    df_dim: int = 64
    r_num: int = 4
    stage1_size: int = 64
    stage2_size: int = 256
    upsample: str = "nearest"
    # pixelshuffle only: ICNR init (no checkerboard at init) or plain N(0, 0.02), for comparison
    icnr: bool = True
    # TensorFlow-vs-Pytorch differences (DESIGN.md §4)
    ca_activation: str = "relu_logvar"
    # False: the paper's CA ablation: c = mu(phi_t), no sampling and no KL term.
    conditioning_augmentation: bool = True
    d_text_input: str = "generator_mu"
    d_matching: str = "concat"
    g_conditioning: str = "input"
    stage2_uncond_head: bool = True
    # D first runs a stride-1 3x3 conv at full resolution. The paper's D opens with a stride-2 4x4
    # conv, which aliases textures of a few pixels' period away: told the label, the Stage-II D
    # encoder learned Shapes' patterns (stripes 6 px, checks 4 px) to 76% in 400 steps with the
    # stem and 37% without (experiments/q6_texture_stem.py; README, "What D reads").
    d_stem: bool = False
    # Stage-II draws a correction on top of the bilinearly upsampled Stage-I image (added before
    # the tanh, in atanh space) instead of the whole image: it starts as an upsampler, so it keeps
    # Stage-I's colours and layout from step 0 and only has to learn the detail. Off = the paper.
    stage2_image_skip: bool = False
    # Every Stage-II up block also reads the Stage-I image, resized to its input (a U-Net-like
    # skip). Through the paper's 16x16 bottleneck alone, Stage-II does not learn to place an edge
    # at 256 px: trained to sharpen real 64 px images (squared error), it stayed at the bilinear
    # upsampler's error for 200 steps, and only with this skip fell below it
    # (experiments/q13_stage2_sharpening.py; README, "Stage-II cannot see edges"). Off = the paper.
    stage2_image_every_block: bool = False
    # Stage-II adds periodic textures of the pixel position at a random phase, gated per pixel
    # (models.TextureSynthesis): its stationary convolutions cannot draw a texture a caption asks
    # for out of a flat Stage-I colour, nor can gradients teach them to. Off = the paper.
    g_texture: bool = False
    # The textures as a modulation around the colour under them (each minus its 9x9 local mean)
    # rather than shades that also tint it. Stage-I's image already carries a pattern's tint, so
    # what the refinement loss asks of the texture is zero-mean; with the mean kept it closed the
    # textures (experiments/q15_refine_alone.py). Off: textures with a mean, which a judge asking
    # for a tint can pull up (README, "A matcher that reads detail only").
    texture_zero_mean: bool = False
    wrong_image: str = "in_batch_shift"
    captions_per_step: int = 1
    # The caption prior (stackgan/prior.py): > 0 puts a network before both generators that maps
    # a caption's embedding and this many dims of noise to a completed caption's embedding, so
    # what the caption leaves open is drawn, not averaged. 0: none (the paper).
    prior_noise_dim: int = 0
    prior_hidden: int = 512
    # Losses (paper: G = adversarial + 2.0 KL)
    kl_weight: float = 2.0
    gan_loss: str = "bce"
    generator_loss: str = "non_saturating"
    # Stabilisers, all off by default
    d_norm: str = "batch"
    gradient_penalty: str = "none"
    gp_weight: float | None = None  # None: the method's own default (R1: 10, MA-GP: 2)
    mode_seeking_weight: float = 0.0
    # Image-sentence contrastive loss on D's features (XMC-GAN, Zhang et al. CVPR 2021): D learns
    # to pick each real image's caption out of the batch, G to make its images pick theirs.
    contrastive_weight: float = 0.0
    contrastive_temperature: float = 0.1
    # Also score every image against the text of this many earlier captions (a queue, as MoCo keeps
    # one; d_text_input="projection" only, D re-projects them each step). In a batch of 32 the
    # captions almost always differ in colour or background, so picking the right one never needs
    # shape or texture; among a thousand, many share the colour and the background.
    contrastive_queue: int = 0
    use_ema: bool = False
    ema_decay: float = 0.999
    # Optimiser (paper: Adam 2e-4, betas (0.5, 0.999), batch 64)
    g_learning_rate: float = 2e-4
    d_learning_rate: float = 2e-4
    adam_betas: tuple = (0.5, 0.999)
    batch_size: int = 64
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for key, allowed in CHOICES.items():
            value = getattr(self, key)
            if value not in allowed:
                raise ValueError(f"StackGANConfig.{key}={value!r} is not one of {allowed}")
        self.adam_betas = tuple(self.adam_betas)
        for key in ("text_dim", "condition_dim", "z_dim", "gf_dim", "df_dim", "captions_per_step"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"StackGANConfig.{key} must be a positive integer, got {getattr(self, key)!r}")
        if self.prior_noise_dim < 0 or self.prior_hidden < 1:
            raise ValueError("StackGANConfig.prior_noise_dim must be >= 0 and prior_hidden >= 1, got "
                             f"{self.prior_noise_dim!r}, {self.prior_hidden!r}")
        if self.r_num < 0:
            raise ValueError(f"StackGANConfig.r_num must be >= 0, got {self.r_num}")
        if self.texture_zero_mean and not self.g_texture:
            raise ValueError("StackGANConfig.texture_zero_mean needs g_texture=True (the textures it changes)")
        if self.gf_dim % 16:
            # Stage-I halves gf_dim*8 four times; Stage-II goes down to gf_dim // 4.
            raise ValueError(f"StackGANConfig.gf_dim must be a multiple of 16, got {self.gf_dim}")
        if self.stage1_size != 64 or self.stage2_size != 256:
            raise ValueError("StackGAN's networks are built for 64 px (Stage-I) and 256 px (Stage-II); "
                             f"got stage1_size={self.stage1_size}, stage2_size={self.stage2_size}")
        if self.contrastive_weight < 0 or self.contrastive_temperature <= 0:
            raise ValueError("StackGANConfig.contrastive_weight must be >= 0 and contrastive_temperature > 0, got "
                             f"{self.contrastive_weight!r}, {self.contrastive_temperature!r}")
        if self.contrastive_queue < 0 or (self.contrastive_queue and (
                self.contrastive_weight <= 0 or self.d_text_input != "projection")):
            raise ValueError("StackGANConfig.contrastive_queue needs contrastive_weight > 0 and "
                             f"d_text_input='projection'; got contrastive_queue={self.contrastive_queue!r}, "
                             f"contrastive_weight={self.contrastive_weight!r}, d_text_input={self.d_text_input!r}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"StackGANConfig.ema_decay must be in (0, 1), got {self.ema_decay}")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "StackGANConfig":
        """The named preset ("cub", "coco", "shapes", "tiny") with `overrides` applied."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls.from_dict({"preset": name, **PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, values: dict) -> "StackGANConfig":
        """Build from a plain dict (e.g. config.json), refusing keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown StackGANConfig key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**values)

    @property
    def gradient_penalty_weight(self) -> float:
        """gp_weight, or the method's published default: R1 gamma = 10, DF-GAN's MA-GP k = 2."""
        if self.gp_weight is not None:
            return self.gp_weight
        return {"none": 0.0, "r1": 10.0, "ma_gp": 2.0}[self.gradient_penalty]

    def to_dict(self) -> dict:
        """JSON-able dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["adam_betas"] = list(self.adam_betas)
        return out


PRESETS = {
    # Official StackGAN-Pytorch widths for CUB birds and Oxford flowers.
    "cub": dict(gf_dim=128, df_dim=64, r_num=4),
    # Official StackGAN-Pytorch widths for COCO.
    "coco": dict(gf_dim=192, df_dim=96, r_num=2),
    # Small enough to train on 2 CPU cores; whole model well under 20 MB.
    "shapes": dict(gf_dim=32, df_dim=32, r_num=2, condition_dim=64, z_dim=64, batch_size=32),
    # For tests: a forward pass in milliseconds.
    "tiny": dict(gf_dim=16, df_dim=8, r_num=1, condition_dim=8, z_dim=8, batch_size=4),
}
