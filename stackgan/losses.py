"""StackGAN losses and the stabilisers, as small pure functions of logits and tensors.

Conventions: D outputs logits x; D(x) = sigmoid(x). "bce" is the paper's cross-entropy GAN loss,
"hinge" the hinge loss of Lim & Ye 2017 / Miyato et al. 2018.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def real_loss(logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Loss for logits that should read "real".

    bce: -log D = softplus(-x);  hinge: max(0, 1 - x).
    """
    return F.softplus(-logits).mean() if kind == "bce" else F.relu(1.0 - logits).mean()


def fake_loss(logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Loss for logits that should read "fake".

    bce: -log(1 - D) = softplus(x);  hinge: max(0, 1 + x).
    """
    return F.softplus(logits).mean() if kind == "bce" else F.relu(1.0 + logits).mean()


def discriminator_loss(real: torch.Tensor, wrong: torch.Tensor, fake: torch.Tensor,
                       real_uncond: torch.Tensor | None = None, fake_uncond: torch.Tensor | None = None,
                       kind: str = "bce") -> torch.Tensor:
    """Matching-aware D loss (paper §3.1, after Reed et al. 2016).

    real: real image + matching text; wrong: real image + mismatched text; fake: G's image + text.
        L_D = L(real) + (L(wrong) + L(fake)) / 2
    With Stage-II's unconditional head (StackGAN-Pytorch):
        L_D = (L(real) + L(real_u)) / 2 + (L(fake) + L(wrong) + L(fake_u)) / 3
    """
    l_real, l_wrong, l_fake = real_loss(real, kind), fake_loss(wrong, kind), fake_loss(fake, kind)
    if real_uncond is None:
        return l_real + (l_wrong + l_fake) / 2
    return (l_real + real_loss(real_uncond, kind)) / 2 + (l_fake + l_wrong + fake_loss(fake_uncond, kind)) / 3


def adversarial_loss(fake: torch.Tensor, kind: str = "bce", saturating: bool = False) -> torch.Tensor:
    """G's adversarial loss on the logits of its images.

    bce, non-saturating (paper): -log D(G(z)) = softplus(-x)
    bce, saturating (Goodfellow 2014's minimax form): log(1 - D(G(z))) = -softplus(x); its gradient
        vanishes when D confidently rejects G's images, which is why the paper does not use it.
    hinge: -x
    """
    if kind == "hinge":
        return -fake.mean()
    return -F.softplus(fake).mean() if saturating else F.softplus(-fake).mean()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)), averaged over batch and dimensions as both official codes do.

        KL = mean(0.5 * (mu^2 + sigma^2 - 1 - log sigma^2))
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean()


def generator_loss(fake: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                   fake_uncond: torch.Tensor | None = None, kind: str = "bce",
                   saturating: bool = False, kl_weight: float = 2.0) -> torch.Tensor:
    """L_G = adversarial (+ unconditional head's) + kl_weight * KL  (paper eq. 6, lambda = 2)."""
    loss = adversarial_loss(fake, kind, saturating)
    if fake_uncond is not None:
        loss = loss + adversarial_loss(fake_uncond, kind, saturating)
    return loss + kl_weight * kl_divergence(mu, logvar)


def gradient_norms(logits: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Per-sample L2 norm of d(sum logits)/d(inputs), all inputs joined; differentiable."""
    grads = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
    return torch.cat([g.flatten(1) for g in grads], dim=1).norm(2, dim=1)


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E ||grad_x D(x)||^2 on real data; the loss adds gamma/2 of it."""
    return gradient_norms(real_logits, (real_images,)).pow(2).mean()


def ma_gp_penalty(real_logits: torch.Tensor, real_images: torch.Tensor, condition: torch.Tensor,
                  p: float = 6.0) -> torch.Tensor:
    """Matching-aware zero-centred GP (DF-GAN, Tao et al. 2022): E ||grad_(x, e) D(x, e)||^p on
    real matching pairs; the loss adds k times it (paper: k = 2, p = 6)."""
    return gradient_norms(real_logits, (real_images, condition)).pow(p).mean()


def mode_seeking_loss(images_1: torch.Tensor, images_2: torch.Tensor, z_1: torch.Tensor,
                      z_2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Mode seeking (MSGAN, Mao et al. 2019): G minimises 1 / (d_I / d_z + eps), where
    d_I = mean |G(c, z1) - G(c, z2)| and d_z = mean |z1 - z2|, so different noise must give
    different images."""
    ratio = (images_1 - images_2).abs().mean() / (z_1 - z_2).abs().mean()
    return 1.0 / (ratio + eps)


def contrastive_loss(similarity: torch.Tensor, temperature: float) -> torch.Tensor:
    """Image-to-text InfoNCE (XMC-GAN): row i of the (B, B [+ queued]) similarities should peak at
    column i."""
    return F.cross_entropy(similarity / temperature, torch.arange(len(similarity), device=similarity.device))


def nearest_other_caption(embedding: torch.Tensor, same: float = 0.999) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, partner): for each row, the index of the most similar embedding in the batch (cosine)
    that is not the same caption (cosine >= `same`: itself, or a repeated caption, which would be
    a correct match). Rows with no such partner are left out."""
    unit = F.normalize(embedding.detach().float(), dim=1)
    similarity = unit @ unit.t()
    similarity = similarity.masked_fill(similarity >= same, float("-inf"))
    best, partner = similarity.max(dim=1)
    rows = torch.nonzero(best > float("-inf")).squeeze(1)
    return rows, partner[rows]


def mismatched_logits(config, discriminator, real_features: torch.Tensor, condition: torch.Tensor,
                      embedding: torch.Tensor, wrong: torch.Tensor | None = None) -> torch.Tensor:
    """D's logits for the matching-aware loss's mismatched pairs (config.wrong_image)."""
    if wrong is not None:
        return discriminator.logits(discriminator.encode(wrong), condition)
    if config.wrong_image == "nearest_text":
        rows, partner = nearest_other_caption(embedding)
        return discriminator.logits(real_features[rows], condition[partner])
    return discriminator.logits(real_features[:-1], condition[1:])


# The objectives as one training step uses them (after StyleGAN2-ADA's loss.py): the config picks
# the loss kind and the stabilisers, so train/train.py stays a plain D step / G step loop.

def discriminator_objective(config, discriminator, real: torch.Tensor, fake: torch.Tensor,
                            embedding: torch.Tensor, mu: torch.Tensor,
                            wrong: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """D's loss on a batch: matching-aware loss (+ gradient penalty). Returns (loss, stats).

    `wrong` holds mismatched real images (config.wrong_image="other_class"); without it the
    wrong pairs are the real images with the batch's conditions shifted by one (StackGAN-Pytorch)
    or, for "nearest_text", each with the condition of the batch's closest other caption.
    """
    condition = discriminator.condition(embedding, mu)
    penalty = config.gradient_penalty
    if penalty != "none":
        real = real.detach().requires_grad_(True)
        if not condition.requires_grad:
            condition = condition.detach().requires_grad_(True)
    real_features, fake_features = discriminator.encode(real), discriminator.encode(fake.detach())
    real_logits = discriminator.logits(real_features, condition)
    fake_logits = discriminator.logits(fake_features, condition)
    wrong_logits = mismatched_logits(config, discriminator, real_features, condition, embedding, wrong)
    loss = discriminator_loss(real_logits, wrong_logits, fake_logits,
                              discriminator.unconditional_logits(real_features),
                              discriminator.unconditional_logits(fake_features), config.gan_loss)
    stats = {"d_real": torch.sigmoid(real_logits).mean().detach(),
             "d_wrong": torch.sigmoid(wrong_logits).mean().detach(),
             "d_fake": torch.sigmoid(fake_logits).mean().detach()}
    if config.contrastive_weight > 0:
        stats["d_contrastive"] = contrastive_loss(discriminator.similarity(real_features, condition),
                                                  config.contrastive_temperature)
        loss = loss + config.contrastive_weight * stats["d_contrastive"]
    if penalty == "r1":
        stats["r1"] = r1_penalty(real_logits, real)
        loss = loss + config.gradient_penalty_weight / 2 * stats["r1"]
    elif penalty == "ma_gp":
        stats["ma_gp"] = ma_gp_penalty(real_logits, real, condition)
        loss = loss + config.gradient_penalty_weight * stats["ma_gp"]
    stats = {k: v.detach() for k, v in stats.items()}
    stats["d_loss"] = loss.detach()
    return loss, stats


def generator_objective(config, discriminator, fake: torch.Tensor, embedding: torch.Tensor,
                        mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor | None = None,
                        fake_2: torch.Tensor | None = None, z_2: torch.Tensor | None = None,
                        mode_seeking_features=None) -> tuple[torch.Tensor, dict]:
    """G's loss on a batch: adversarial + KL (+ mode seeking with a second image per condition,
    `fake_2` drawn with noise `z_2`; needed when config.mode_seeking_weight > 0). The mode-seeking
    distance is in pixels, or in `mode_seeking_features(images)` (e.g. a matcher's image space,
    where only a change in what is drawn counts)."""
    condition = discriminator.condition(embedding, mu)
    features = discriminator.encode(fake)
    loss = generator_loss(discriminator.logits(features, condition), mu, logvar,
                          discriminator.unconditional_logits(features), config.gan_loss,
                          config.generator_loss == "saturating",
                          config.kl_weight if config.conditioning_augmentation else 0.0)
    stats = {"kl": kl_divergence(mu, logvar).detach()}
    if config.contrastive_weight > 0:
        stats["g_contrastive"] = contrastive_loss(discriminator.similarity(features, condition),
                                                  config.contrastive_temperature)
        loss = loss + config.contrastive_weight * stats["g_contrastive"]
    if config.mode_seeking_weight > 0:
        if fake_2 is None or z is None or z_2 is None:
            raise ValueError("mode_seeking_weight > 0 needs fake_2, z and z_2 (two images per condition)")
        measure = mode_seeking_features or (lambda images: images)
        stats["mode_seeking"] = mode_seeking_loss(measure(fake), measure(fake_2), z, z_2)
        loss = loss + config.mode_seeking_weight * stats["mode_seeking"]
    stats = {k: v.detach() for k, v in stats.items()}
    stats["g_loss"] = loss.detach()
    return loss, stats
