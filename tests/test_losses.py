"""Losses against numbers computed by hand (the arithmetic is in the comments)."""

import math

import pytest
import torch

from stackgan import ExponentialMovingAverage, StackGANConfig, Stage1Discriminator, Stage1Generator
from stackgan.losses import (adversarial_loss, discriminator_loss, discriminator_objective, fake_loss,
                             generator_loss, generator_objective, kl_divergence, ma_gp_penalty,
                             mode_seeking_loss, nearest_other_caption, r1_penalty, real_loss)

LN2 = 0.6931471805599453


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_bce_parts():
    # -log sigmoid(0) = ln 2 ; -log sigmoid(ln 3) = -log(3/4) = 0.2876821
    assert real_loss(t(0.0, math.log(3))).item() == pytest.approx((LN2 + 0.2876821) / 2, abs=1e-6)
    # -log(1 - sigmoid(ln 3)) = -log(1/4) = 1.3862944
    assert fake_loss(t(math.log(3))).item() == pytest.approx(1.3862944, abs=1e-6)


def test_matching_aware_discriminator_loss():
    # real=2: ln(1+e^-2) = 0.1269280 ; wrong=-1: ln(1+e^-1) = 0.3132617 ; fake=1: ln(1+e) = 1.3132617
    # L_D = 0.1269280 + (0.3132617 + 1.3132617) / 2 = 0.9401897
    assert discriminator_loss(t(2.0), t(-1.0), t(1.0)).item() == pytest.approx(0.9401897, abs=1e-6)


def test_discriminator_loss_with_unconditional_head():
    # (L_real + L_real_u) / 2 + (L_fake + L_wrong + L_fake_u) / 3 with real_u = 0 (ln 2), fake_u = 0 (ln 2)
    # = (0.1269280 + 0.6931472) / 2 + (1.3132617 + 0.3132617 + 0.6931472) / 3 = 0.4100376 + 0.7732235
    value = discriminator_loss(t(2.0), t(-1.0), t(1.0), t(0.0), t(0.0)).item()
    assert value == pytest.approx(1.1832611, abs=1e-6)


def test_hinge_loss():
    # real: mean(max(0, 1 - 0.5), max(0, 1 - 2)) = 0.25 ; fake: mean(max(0, 1 - 2), max(0, 1 + 0.5)) = 0.75
    assert real_loss(t(0.5, 2.0), "hinge").item() == 0.25
    assert fake_loss(t(-2.0, 0.5), "hinge").item() == 0.75
    # L_D = 0.25 + (wrong 0.75 + fake 0.75) / 2 = 1.0 ; hinge G = -mean(x) = -1.25
    assert discriminator_loss(t(0.5, 2.0), t(-2.0, 0.5), t(-2.0, 0.5), kind="hinge").item() == 1.0
    assert adversarial_loss(t(0.5, 2.0), "hinge").item() == -1.25


def test_kl_divergence():
    # mu = (1, 0), log var = (0, ln 4): 0.5 (1 + 1 - 1 - 0) = 0.5 ; 0.5 (0 + 4 - 1 - ln 4) = 0.8068528
    assert kl_divergence(t(1.0, 0.0), t(0.0, math.log(4))).item() == pytest.approx(0.6534264, abs=1e-6)
    assert kl_divergence(torch.zeros(4, 3), torch.zeros(4, 3)).item() == 0.0


def test_generator_loss_adds_twice_the_kl():
    # adversarial -log sigmoid(0) = ln 2 ; KL(mu=1, var=1) = 0.5 ; L_G = ln 2 + 2.0 * 0.5
    assert generator_loss(t(0.0), t(1.0), t(0.0)).item() == pytest.approx(LN2 + 1.0, abs=1e-9)
    # with the unconditional head both adversarial terms add (StackGAN-Pytorch)
    assert generator_loss(t(0.0), t(1.0), t(0.0), fake_uncond=t(0.0)).item() == pytest.approx(2 * LN2 + 1.0)
    assert generator_loss(t(0.0), t(1.0), t(0.0), kl_weight=0.0).item() == pytest.approx(LN2)


def test_saturating_loss_gradient_vanishes_where_non_saturating_does_not():
    # D rejects G's image with logit -10: d/dx log(1 - sigmoid(x)) = -sigmoid(x) = -4.54e-5,
    # d/dx -log sigmoid(x) = -sigmoid(-x) = -0.99995
    x = torch.tensor([-10.0], requires_grad=True)
    (g_sat,) = torch.autograd.grad(adversarial_loss(x, saturating=True), x)
    (g_ns,) = torch.autograd.grad(adversarial_loss(x), x)
    assert g_sat.item() == pytest.approx(-4.5398e-5, rel=1e-3)
    assert g_ns.item() == pytest.approx(-0.9999546, rel=1e-5)
    assert adversarial_loss(t(0.0), saturating=True).item() == pytest.approx(-LN2)


def test_r1_penalty_of_a_linear_discriminator_is_its_weight_norm():
    w = torch.randn(3, 4, 4, dtype=torch.float64)
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    logits = (x * w).sum(dim=(1, 2, 3))  # grad_x D = w for every sample
    assert r1_penalty(logits, x).item() == pytest.approx(w.pow(2).sum().item())


def test_ma_gp_joins_image_and_text_gradients():
    # D = <x, w> + <c, v> with |w|^2 = 3 and |v|^2 = 1: ||grad|| = 2, penalty = 2^6 = 64
    x = torch.zeros(2, 3, requires_grad=True)
    c = torch.zeros(2, 1, requires_grad=True)
    logits = x.sum(dim=1) + c.sum(dim=1)
    assert ma_gp_penalty(logits, x, c).item() == pytest.approx(64.0)
    assert ma_gp_penalty(logits, x, c, p=2).item() == pytest.approx(4.0)


def test_mode_seeking_loss():
    # mean |I1 - I2| = 0.5 ; mean |z1 - z2| = 2 ; 1 / (0.25 + 1e-5)
    value = mode_seeking_loss(torch.zeros(2, 3), torch.full((2, 3), 0.5), torch.zeros(2, 4), torch.full((2, 4), 2.0))
    assert value.item() == pytest.approx(1 / 0.25001)


def test_ema_update():
    model = torch.nn.Linear(2, 1)
    torch.nn.init.zeros_(model.weight)
    ema = ExponentialMovingAverage(model, decay=0.9)
    torch.nn.init.ones_(model.weight)
    ema.update(model)  # 0.9 * 0 + 0.1 * 1
    assert torch.allclose(ema.model.weight, torch.full((1, 2), 0.1))
    ema.update(model)  # 0.9 * 0.1 + 0.1 * 1 = 0.19
    assert torch.allclose(ema.model.weight, torch.full((1, 2), 0.19))
    assert not ema.model.weight.requires_grad
    with pytest.raises(ValueError, match="decay"):
        ExponentialMovingAverage(model, decay=1.5)


def test_ema_warmup_follows_early_weights():
    model = torch.nn.Linear(2, 1)
    torch.nn.init.zeros_(model.weight)
    ema = ExponentialMovingAverage(model, decay=0.999)
    torch.nn.init.ones_(model.weight)
    ema.update(model, step=1)  # decay (1 + 1) / (10 + 1) = 2/11
    assert torch.allclose(ema.model.weight, torch.full((1, 2), 9 / 11))
    assert ema.decay_at(5) == pytest.approx(6 / 15) and ema.decay_at(100_000) == 0.999


def test_ema_copies_batchnorm_statistics():
    model = torch.nn.BatchNorm1d(3)
    ema = ExponentialMovingAverage(model, decay=0.99)
    model.train()(torch.randn(8, 3) + 5)
    ema.update(model)
    assert torch.equal(ema.model.running_mean, model.running_mean)


# --- the config options change the objectives the training step optimises ---------------------

def batch(config, seed=0):
    torch.manual_seed(seed)
    g = Stage1Generator(config)
    embedding, z = torch.randn(4, config.text_dim), torch.randn(4, config.z_dim)
    fake, mu, logvar = g(embedding, z)
    real = torch.rand(4, 3, 64, 64) * 2 - 1
    return g, embedding, z, fake, mu, logvar, real


def d_loss(config, seed=0):
    _, embedding, _, fake, mu, _, real = batch(config, seed)
    torch.manual_seed(1)
    return discriminator_objective(config, Stage1Discriminator(config), real, fake, embedding, mu)


def test_default_objective_is_the_paper_loss():
    config = StackGANConfig.from_preset("tiny")
    _, embedding, _, fake, mu, logvar, real = batch(config)
    torch.manual_seed(1)
    d = Stage1Discriminator(config)
    loss, stats = discriminator_objective(config, d, real, fake, embedding, mu)
    real_f, fake_f = d.encode(real), d.encode(fake)
    expected = discriminator_loss(d.logits(real_f, mu), d.logits(real_f[:-1], mu[1:]), d.logits(fake_f, mu))
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert set(stats) == {"d_real", "d_wrong", "d_fake", "d_loss"}
    g_loss, g_stats = generator_objective(config, d, fake, embedding, mu, logvar)
    expected = generator_loss(d.logits(d.encode(fake), mu), mu, logvar)
    assert g_loss.item() == pytest.approx(expected.item(), abs=1e-6) and g_stats["kl"] > 0


def test_other_class_wrong_images_are_used():
    config = StackGANConfig.from_preset("tiny")
    _, embedding, _, fake, mu, _, real = batch(config)
    torch.manual_seed(1)
    d = Stage1Discriminator(config)
    shifted, _ = discriminator_objective(config, d, real, fake, embedding, mu)
    other, _ = discriminator_objective(config, d, real, fake, embedding, mu, wrong=-real)
    assert shifted.item() != pytest.approx(other.item())


def test_nearest_other_caption_skips_itself_and_repeats_of_its_caption():
    e = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.1, 0.9, 0.3]])
    rows, partner = nearest_other_caption(e)
    # rows 2 and 3 are the same caption (cosine 1): a correct match, not a wrong one
    assert rows.tolist() == [0, 1, 2, 3, 4] and partner.tolist() == [1, 0, 4, 4, 2]
    rows, partner = nearest_other_caption(torch.ones(3, 4))
    assert rows.numel() == 0  # one caption repeated: no wrong pairs at all


def test_nearest_text_wrong_pairs_score_each_image_with_its_closest_other_caption():
    config = StackGANConfig.from_preset("tiny", wrong_image="nearest_text")
    _, embedding, _, fake, mu, _, real = batch(config)
    torch.manual_seed(1)
    d = Stage1Discriminator(config)
    loss, stats = discriminator_objective(config, d, real, fake, embedding, mu)
    rows, partner = nearest_other_caption(embedding)
    assert not torch.equal(partner, (rows + 1) % len(embedding))  # not the shift, for this batch
    real_f, fake_f = d.encode(real), d.encode(fake)
    wrong = d.logits(real_f[rows], mu[partner])
    expected = discriminator_loss(d.logits(real_f, mu), wrong, d.logits(fake_f, mu))
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert stats["d_wrong"].item() == pytest.approx(torch.sigmoid(wrong).mean().item(), abs=1e-6)


def test_hinge_option_changes_the_objective():
    base, _ = d_loss(StackGANConfig.from_preset("tiny"))
    hinge, _ = d_loss(StackGANConfig.from_preset("tiny", gan_loss="hinge"))
    assert base.item() != pytest.approx(hinge.item(), abs=1e-4)


@pytest.mark.parametrize("penalty", ["r1", "ma_gp"])
def test_gradient_penalty_option_adds_a_differentiable_term(penalty):
    base, _ = d_loss(StackGANConfig.from_preset("tiny"))
    config = StackGANConfig.from_preset("tiny", gradient_penalty=penalty)
    loss, stats = d_loss(config)
    weight = config.gradient_penalty_weight / (2 if penalty == "r1" else 1)
    assert stats[penalty] > 0
    assert loss.item() == pytest.approx(base.item() + weight * stats[penalty].item(), rel=1e-4)
    loss.backward()  # the penalty's double backward works through the whole D


def test_mode_seeking_option_adds_its_term():
    config = StackGANConfig.from_preset("tiny", mode_seeking_weight=1.0)
    g, embedding, z, fake, mu, logvar, _ = batch(config)
    d = Stage1Discriminator(config)
    with pytest.raises(ValueError, match="fake_2"):
        generator_objective(config, d, fake, embedding, mu, logvar)
    z_2 = torch.randn_like(z)
    fake_2, _, _ = g(embedding, z_2)
    loss, stats = generator_objective(config, d, fake, embedding, mu, logvar, z, fake_2, z_2)
    base, _ = generator_objective(StackGANConfig.from_preset("tiny"), d, fake, embedding, mu, logvar)
    assert loss.item() == pytest.approx(base.item() + stats["mode_seeking"].item(), rel=1e-5)
    # Measured in a feature space instead: two draws that differ only in what the features ignore
    # (here, the image's mean) count as one image, and the loss is 1 / eps.
    centred = lambda images: images - images.mean(dim=(1, 2, 3), keepdim=True)  # noqa: E731
    _, same = generator_objective(config, d, fake, embedding, mu, logvar, z, fake + 0.1, z_2, centred)
    assert same["mode_seeking"].item() == pytest.approx(1e5, rel=1e-2)
    assert stats["mode_seeking"].item() < 1e3


def test_saturating_option_changes_the_generator_objective():
    config = StackGANConfig.from_preset("tiny")
    _, embedding, _, fake, mu, logvar, _ = batch(config)
    d = Stage1Discriminator(config)
    ns, _ = generator_objective(config, d, fake, embedding, mu, logvar)
    sat, _ = generator_objective(StackGANConfig.from_preset("tiny", generator_loss="saturating"),
                                 d, fake, embedding, mu, logvar)
    assert ns.item() != pytest.approx(sat.item(), abs=1e-3)
