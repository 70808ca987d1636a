import pytest
import torch
from torch import nn

from stackgan import (ConditioningAugmentation, StackGANConfig, Stage1Discriminator, Stage1Generator,
                      Stage2Discriminator, Stage2Generator)
from stackgan.models import UpBlock, phase_kernels

NETWORKS = (Stage1Generator, Stage1Discriminator, Stage2Generator, Stage2Discriminator)


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("preset,expected", [
    ("cub", (10_301_248, 5_715_713, 26_290_080, 71_269_122)),
    ("coco", (20_020_832, 12_407_425, 37_130_480, 159_889_538)),
])
def test_parameter_counts_match_official_stackgan_pytorch(preset, expected):
    config = StackGANConfig.from_preset(preset, text_dim=1024)
    assert tuple(count(network(config)) for network in NETWORKS) == expected


def test_shapes_preset_model_is_under_20_mb():
    config = StackGANConfig.from_preset("shapes")
    size = sum(count(n(config)) for n in (Stage1Generator, Stage2Generator)) * 4
    assert size < 20e6


@pytest.fixture
def tiny():
    return StackGANConfig.from_preset("tiny")


def test_forward_shapes(tiny):
    torch.manual_seed(0)
    e, z = torch.randn(3, tiny.text_dim), torch.randn(3, tiny.z_dim)
    image1, mu, logvar = Stage1Generator(tiny)(e, z)
    assert image1.shape == (3, 3, 64, 64) and mu.shape == logvar.shape == (3, tiny.condition_dim)
    assert image1.abs().max() <= 1
    image2, mu2, _ = Stage2Generator(tiny)(image1, e)
    assert image2.shape == (3, 3, 256, 256) and mu2.shape == (3, tiny.condition_dim)
    cond, uncond = Stage1Discriminator(tiny)(image1, mu)
    assert cond.shape == (3,) and uncond is None
    cond, uncond = Stage2Discriminator(tiny)(image2, mu2)
    assert cond.shape == uncond.shape == (3,)
    no_head = StackGANConfig.from_preset("tiny", stage2_uncond_head=False)
    assert Stage2Discriminator(no_head)(image2, mu2)[1] is None


def test_wrong_embedding_dimension_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match=r"shape \(2, 100\).*\(batch, 384\).*text_dim=384"):
        Stage1Generator(tiny)(torch.randn(2, 100), torch.randn(2, tiny.z_dim))


def test_init_follows_the_paper(tiny):
    g = Stage1Generator(StackGANConfig.from_preset("cub"))
    conv = g.up[0].conv.weight
    assert abs(conv.std().item() - 0.02) < 1e-3 and abs(conv.mean().item()) < 1e-3
    bn = g.up[0].bn.weight
    assert abs(bn.mean().item() - 1.0) < 0.01 and 0.01 < bn.std().item() < 0.03


def test_pixelshuffle_block_equals_nearest_upsample_conv_at_init():
    torch.manual_seed(0)
    nearest, shuffle = UpBlock(6, 4, "nearest"), UpBlock(6, 4, "pixelshuffle")
    assert shuffle.conv.weight.shape == (16, 6, 3, 3)
    shuffle.icnr_(nearest.conv.weight.detach())
    shuffle.bn.load_state_dict(nearest.bn.state_dict())
    x = torch.randn(2, 6, 5, 7)
    assert torch.allclose(nearest(x), shuffle(x), atol=1e-6)
    # The phase kernels really differ per sub-pixel (it is not classic ICNR's 4 copies).
    k = phase_kernels(nearest.conv.weight.detach()).view(4, 4, 6, 3, 3)
    assert not torch.allclose(k[:, 0], k[:, 3])


def test_pixelshuffle_generator_matches_nearest_generator_given_the_same_kernels(tiny):
    torch.manual_seed(0)
    nearest = Stage1Generator(tiny).eval()
    shuffle = Stage1Generator(StackGANConfig.from_preset("tiny", upsample="pixelshuffle")).eval()
    state = nearest.state_dict()
    state.update({f"up.{i}.conv.weight": phase_kernels(nearest.up[i].conv.weight.detach()) for i in range(4)})
    shuffle.load_state_dict(state)
    e, z, eps = torch.randn(2, tiny.text_dim), torch.randn(2, tiny.z_dim), torch.randn(2, tiny.condition_dim)
    assert torch.allclose(nearest(e, z, eps)[0], shuffle(e, z, eps)[0], atol=1e-5)


def test_fresh_pixelshuffle_network_is_icnr_initialised(tiny):
    shuffle = Stage1Generator(StackGANConfig.from_preset("tiny", upsample="pixelshuffle"))
    w = shuffle.up[0].conv.weight.view(-1, 4, *shuffle.up[0].conv.weight.shape[1:])
    # Phase (0, 0) never reads the +1 row or column; phase (1, 1) never reads -1 (see PHASE_TAPS).
    assert torch.count_nonzero(w[:, 0, :, 2, :]) == 0 and torch.count_nonzero(w[:, 3, :, 0, :]) == 0


def test_conditioning_augmentation_variants():
    torch.manual_seed(0)
    e = torch.randn(16, 32)
    relu = ConditioningAugmentation(32, 8, "relu_logvar")
    c, mu, logvar = relu(e, torch.zeros(16, 8))
    assert torch.equal(c, mu) and (logvar >= 0).all()  # Pytorch's ReLU forces sigma >= 1
    leaky = ConditioningAugmentation(32, 8, "leaky_logsigma")
    leaky.fc.load_state_dict(relu.fc.state_dict())
    _, mu_l, logvar_l = leaky(e, torch.zeros(16, 8))
    assert (logvar_l < 0).any()
    expected_log_sigma = torch.nn.functional.leaky_relu(leaky.fc(e), 0.2)[:, 8:]
    assert torch.allclose(logvar_l, 2 * expected_log_sigma)
    eps = torch.ones(16, 8)
    c, mu, logvar = relu(e, eps)
    assert torch.allclose(c, mu + torch.exp(0.5 * logvar))


def test_discriminator_text_input_options(tiny):
    e, mu = torch.randn(2, tiny.text_dim), torch.randn(2, tiny.condition_dim, requires_grad=True)
    d_mu = Stage1Discriminator(tiny)
    assert d_mu.text_projection is None
    condition = d_mu.condition(e, mu)
    assert torch.equal(condition, mu) and not condition.requires_grad
    d_proj = Stage1Discriminator(StackGANConfig.from_preset("tiny", d_text_input="projection"))
    assert count(d_proj) == count(d_mu) + tiny.text_dim * tiny.condition_dim + tiny.condition_dim
    assert d_proj.condition(e, mu).shape == (2, tiny.condition_dim)


def test_projection_discriminator_scores_text_by_inner_product(tiny):
    torch.manual_seed(0)
    config = StackGANConfig.from_preset("tiny", d_matching="inner_product")
    for network in (Stage1Discriminator, Stage2Discriminator):
        d = network(config).eval()
        assert not hasattr(d, "cond_head")
        size = 64 if network is Stage1Discriminator else 256
        x, c = torch.randn(3, 3, size, size), torch.randn(3, tiny.condition_dim)
        features = d.encode(x)
        pooled = features.sum(dim=(2, 3))
        expected = d.realness(pooled).view(-1) + torch.einsum("bk,kc,bc->b", pooled, d.text_embedding.weight, c)
        assert torch.allclose(d.logits(features, c), expected, atol=1e-5)
        # the text enters linearly: logit(c1 + c2) - logit(c2) = logit(c1) - logit(0)
        zero = torch.zeros_like(c)
        assert torch.allclose(d.logits(features, 2 * c) - d.logits(features, c),
                              d.logits(features, c) - d.logits(features, zero), atol=1e-4)


def test_spatial_inner_product_sees_where_features_are_and_pooled_does_not(tiny):
    torch.manual_seed(0)
    x, c = torch.randn(2, 3, 64, 64), torch.randn(2, tiny.condition_dim)
    scores = {}
    for matching in ("inner_product", "spatial_inner_product"):
        d = Stage1Discriminator(StackGANConfig.from_preset("tiny", d_matching=matching,
                                                           contrastive_weight=1.0)).eval()
        features = d.encode(x)
        moved = torch.roll(features, shifts=(1, 2), dims=(2, 3))  # same content, other cells
        scores[matching] = [(d.logits(f, c), d.similarity(f, c)) for f in (features, moved)]
        assert d.text_embedding.in_features == tiny.condition_dim
        assert d.text_embedding.out_features == tiny.df_dim * 8 * (17 if matching.startswith("spatial") else 1)
    (logits, sim), (logits_moved, sim_moved) = scores["inner_product"]
    assert torch.allclose(logits, logits_moved, atol=1e-5) and torch.allclose(sim, sim_moved, atol=1e-5)
    (logits, sim), (logits_moved, sim_moved) = scores["spatial_inner_product"]
    assert (logits - logits_moved).abs().min() > 1e-4 and (sim - sim_moved).abs().min() > 1e-5


def test_stage2_image_skip_starts_as_the_upsampled_stage1_image_and_learns():
    torch.manual_seed(0)
    config = StackGANConfig.from_preset("tiny", stage2_image_skip=True)
    g = Stage2Generator(config).eval()
    stage1 = torch.rand(2, 3, 64, 64) * 1.8 - 0.9
    e = torch.randn(2, config.text_dim)
    image, _, _ = g(stage1, e)
    upsampled = nn.functional.interpolate(stage1, size=256, mode="bilinear", align_corners=False)
    assert torch.allclose(image, upsampled, atol=1e-5)
    image.sum().backward()
    assert g.to_image[0].weight.grad.abs().sum() > 0  # the correction is trained
    plain, _, _ = Stage2Generator(StackGANConfig.from_preset("tiny")).eval()(stage1, e)
    assert not torch.allclose(plain, upsampled, atol=0.1)


def test_stage2_image_every_block_feeds_the_stage1_image_to_each_up_block():
    from stackgan.fast import fold_batchnorm
    torch.manual_seed(0)
    config = StackGANConfig.from_preset("tiny", stage2_image_skip=True, stage2_image_every_block=True)
    g = Stage2Generator(config)
    plain = Stage2Generator(StackGANConfig.from_preset("tiny", stage2_image_skip=True))
    for block, paper_block in zip(g.up, plain.up):
        assert block.conv.in_channels == paper_block.conv.in_channels + 3
    stage1 = torch.rand(2, 3, 64, 64) * 1.8 - 0.9
    e = torch.randn(2, config.text_dim)
    eps = torch.randn(2, config.condition_dim)
    g.eval()
    image, _, _ = g(stage1, e, eps)  # still exactly the upsampled Stage-I image at init
    assert torch.allclose(image, nn.functional.interpolate(stage1, size=256, mode="bilinear"), atol=1e-5)
    # Cut the bottleneck's path: only the image inputs of the blocks can still carry the Stage-I image.
    nn.init.normal_(g.to_image[0].weight, 0, 0.1)
    g.encoder[0].weight.data.zero_()
    other = stage1.flip(-1)
    features = [g(x, e, eps)[0] - nn.functional.interpolate(x, size=256, mode="bilinear") for x in (stage1, other)]
    assert (features[0] - features[1]).abs().mean() > 1e-3
    g.up[0].conv.weight.data[:, -3:] = 0
    for block in g.up[1:]:
        block.conv.weight.data[:, -3:] = 0
    features = [g(x, e, eps)[0] - nn.functional.interpolate(x, size=256, mode="bilinear") for x in (stage1, other)]
    assert torch.allclose(features[0], features[1], atol=1e-4)
    # the inference copies (BatchNorm folded, 2x2 phase kernels) compute the same function
    nn.init.normal_(g.up[2].conv.weight, 0, 0.05)
    assert torch.allclose(fold_batchnorm(g)(stage1, e, eps)[0], g(stage1, e, eps)[0], atol=1e-4)


def test_conditioning_augmentation_can_be_switched_off_for_the_ablation(tiny):
    from stackgan.losses import generator_objective
    torch.manual_seed(0)
    config = StackGANConfig.from_preset("tiny", conditioning_augmentation=False)
    g = Stage1Generator(config).eval()
    e = torch.randn(3, config.text_dim)
    c, mu, logvar = g.ca(e, torch.randn(3, config.condition_dim))
    assert torch.equal(c, mu)
    a, _, _ = g(e, torch.zeros(3, config.z_dim), torch.randn(3, config.condition_dim))
    b, _, _ = g(e, torch.zeros(3, config.z_dim), torch.randn(3, config.condition_dim))
    assert torch.equal(a, b)  # the condition carries no noise
    d = Stage1Discriminator(config).eval()
    with_ca = StackGANConfig.from_preset("tiny")
    loss_off, stats = generator_objective(config, d, a, e, mu, logvar)
    loss_on, _ = generator_objective(with_ca, d, a, e, mu, logvar)
    assert torch.allclose(loss_on - loss_off, with_ca.kl_weight * stats["kl"])  # no KL term without CA


def test_pixelshuffle_without_icnr_starts_with_unrelated_subpixel_kernels():
    torch.manual_seed(0)
    plain = Stage1Generator(StackGANConfig.from_preset("tiny", upsample="pixelshuffle", icnr=False))
    w = plain.up[0].conv.weight.view(-1, 4, *plain.up[0].conv.weight.shape[1:])
    # none of ICNR's zero taps (see test_fresh_pixelshuffle_network_is_icnr_initialised): plain N(0, 0.02)
    assert torch.count_nonzero(w[:, 0, :, 2, :]) == w[:, 0, :, 2, :].numel()
    assert abs(plain.up[0].conv.weight.std().item() - 0.02) < 0.002


def test_contrastive_head_scores_every_image_against_every_caption(tiny):
    torch.manual_seed(0)
    from stackgan.losses import contrastive_loss
    config = StackGANConfig.from_preset("tiny", contrastive_weight=1.0)
    d = Stage1Discriminator(config).eval()
    assert Stage1Discriminator(tiny).contrastive_image is None  # no extra weights unless asked for
    features, c = d.encode(torch.randn(4, 3, 64, 64)), torch.randn(4, tiny.condition_dim)
    similarity = d.similarity(features, c)
    assert similarity.shape == (4, 4) and similarity.abs().max() <= 1 + 1e-6
    # a perfect match (diagonal 1, rest -1) gives a near-zero loss; a uniform one log(B)
    assert contrastive_loss(2 * torch.eye(4) - 1, 0.1) < 1e-3
    assert abs(contrastive_loss(torch.zeros(4, 4), 0.1) - torch.log(torch.tensor(4.0))) < 1e-6
    with pytest.raises(ValueError, match="contrastive_weight"):
        StackGANConfig.from_preset("tiny", contrastive_weight=-1)


def test_spectral_norm_discriminator(tiny):
    torch.manual_seed(0)
    sn = Stage2Discriminator(StackGANConfig.from_preset("tiny", d_norm="spectral"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in sn.modules())
    convs = [m for m in sn.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    sn.train()
    x, c = torch.randn(2, 3, 256, 256), torch.randn(2, tiny.condition_dim)
    for _ in range(20):  # power iteration converges during training forwards
        sn(x, c)
    w = convs[1].weight.flatten(1)
    assert abs(torch.linalg.matrix_norm(w, ord=2).item() - 1.0) < 0.05


def test_phase_convolution_equals_upsample_then_conv_forward_and_backward():
    from stackgan.models import set_phase_convolution

    torch.manual_seed(0)
    block = UpBlock(12, 6)
    x = torch.randn(2, 12, 7, 5, requires_grad=True)
    outputs = []
    for phase in (True, False):
        set_phase_convolution(block, phase)
        y = block(x)
        grads = torch.autograd.grad((y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum(), [x, block.conv.weight])
        outputs.append((y, *grads))
    for fast, plain in zip(*outputs):
        assert torch.allclose(fast, plain, atol=1e-5, rtol=1e-4)


def test_phase_convolution_whole_generators(tiny):
    from stackgan.models import set_phase_convolution

    torch.manual_seed(0)
    g1, g2 = Stage1Generator(tiny).eval(), Stage2Generator(tiny).eval()
    e, z, eps = torch.randn(2, tiny.text_dim), torch.randn(2, tiny.z_dim), torch.zeros(2, tiny.condition_dim)
    fast = g2(g1(e, z, eps)[0], e, eps)[0]
    set_phase_convolution(g1, False), set_phase_convolution(g2, False)
    plain = g2(g1(e, z, eps)[0], e, eps)[0]
    assert (fast - plain).abs().max() < 1e-4


@pytest.mark.parametrize("generator", (Stage1Generator, Stage2Generator))
def test_every_block_conditioning_starts_as_the_paper_network_then_reads_the_text_per_block(generator):
    from stackgan.fast import fold_batchnorm
    torch.manual_seed(0)
    paper = generator(StackGANConfig.from_preset("tiny")).eval()
    every = generator(StackGANConfig.from_preset("tiny", g_conditioning="every_block")).eval()
    missing, unexpected = every.load_state_dict(paper.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == sorted(f"up.{i}.modulation.{p}" for i in range(4)
                                                        for p in ("weight", "bias"))
    assert all(every.up[i].modulation.weight.abs().sum() == 0 for i in range(4))  # zero at init
    e, eps = torch.randn(2, paper.config.text_dim), torch.randn(2, paper.config.condition_dim)
    first = torch.randn(2, 3, 64, 64).tanh() if generator is Stage2Generator else torch.randn(2, paper.config.z_dim)
    inputs = (first, e, eps) if generator is Stage2Generator else (e, first, eps)
    assert torch.equal(every(*inputs)[0], paper(*inputs)[0])
    every(*inputs)[0].square().sum().backward()
    assert all(every.up[i].modulation.weight.grad.abs().sum() > 0 for i in range(4))  # trainable
    with torch.no_grad():
        for block in every.up:
            block.modulation.weight.normal_(0, 0.3)
    image = every(*inputs)[0]
    assert (image - paper(*inputs)[0]).abs().max() > 1e-3
    assert torch.allclose(fold_batchnorm(every)(*inputs)[0], image, atol=1e-5)


def test_every_block_conditioning_is_a_config_choice():
    with pytest.raises(ValueError, match="g_conditioning='everywhere' is not one of"):
        StackGANConfig.from_preset("tiny", g_conditioning="everywhere")


def test_contrastive_queue_adds_earlier_captions_as_negatives_and_is_saved(tmp_path):
    from safetensors.torch import load_file, save_file
    torch.manual_seed(0)
    config = StackGANConfig.from_preset("tiny", contrastive_weight=1.0, d_text_input="projection",
                                        contrastive_queue=5)
    d = Stage1Discriminator(config)
    features, batch = d.encode(torch.randn(3, 3, 64, 64)), torch.randn(3, config.text_dim)
    assert d.similarity(features, d.condition(batch, None)).shape == (3, 3)  # empty queue
    older = [torch.randn(3, config.text_dim), torch.randn(4, config.text_dim)]
    for e in older:
        d.enqueue(e)
    # 7 captions into 5 slots: the oldest two were overwritten
    kept = torch.cat(older)[2:]
    assert int(d.queue_filled) == 5 and torch.equal(d.text_queue[torch.arange(2, 7) % 5], kept)
    sim = d.similarity(features, d.condition(batch, None))
    assert sim.shape == (3, 8)
    plain = StackGANConfig.from_preset("tiny", contrastive_weight=1.0, d_text_input="projection")
    reference = Stage1Discriminator(plain)
    reference.load_state_dict({k: v for k, v in d.state_dict().items() if k in reference.state_dict()})
    every = reference.similarity(features, reference.condition(torch.cat([batch, d.text_queue]), None))
    assert torch.allclose(sim, every, atol=1e-6)  # the queued columns are those captions' scores
    save_file(d.state_dict(), tmp_path / "d.safetensors")
    restored = Stage1Discriminator(config)
    restored.load_state_dict(load_file(tmp_path / "d.safetensors"))
    assert torch.equal(restored.text_queue, d.text_queue) and int(restored.queue_next) == 2


def test_contrastive_queue_needs_the_contrastive_loss_and_a_projected_text():
    with pytest.raises(ValueError, match="contrastive_queue needs contrastive_weight > 0"):
        StackGANConfig.from_preset("tiny", contrastive_queue=8, d_text_input="projection")
    with pytest.raises(ValueError, match="d_text_input='generator_mu'"):
        StackGANConfig.from_preset("tiny", contrastive_queue=8, contrastive_weight=1.0)


@pytest.mark.parametrize("network,size", [(Stage1Discriminator, 64), (Stage2Discriminator, 256)])
def test_d_stem_adds_a_full_resolution_conv_before_the_paper_encoder(network, size):
    paper = network(StackGANConfig.from_preset("tiny"))
    stem = network(StackGANConfig.from_preset("tiny", d_stem=True))
    ndf = paper.config.df_dim
    first = stem.encoder[0]
    assert (first.kernel_size, first.stride, first.out_channels) == ((3, 3), (1, 1), ndf)
    image = torch.randn(2, 3, size, size)
    assert stem.encoder[:2](image).shape == (2, ndf, size, size)   # no stride before the stem's output
    assert stem.encode(image).shape == paper.encode(image).shape == (2, ndf * 8, 4, 4)
    # the stem, and the first stride-2 conv now reading ndf channels instead of RGB
    assert count(stem) - count(paper) == 3 * ndf * 9 + (ndf - 3) * ndf * 16


def test_texture_synthesis_draws_gated_textures_whose_phase_is_a_translation_set_by_eps():
    from stackgan.fast import fold_batchnorm
    from stackgan.models import TextureSynthesis
    torch.manual_seed(0)
    texture = TextureSynthesis(channels=4, condition_dim=8)
    texture.reset_parameters()
    features, c = torch.zeros(1, 4, 40, 40), torch.zeros(1, 8)
    features[:, 0] = 1.0
    eps = torch.zeros(1, 8)
    # At its start it draws nothing (a fine-tuned G starts where it was), yet the textures' colour
    # gets a gradient from a judge that only asks for another tint, and it is the features' own.
    assert texture(features, c, eps).abs().max() == 0
    texture(features, c, eps).sum().backward()
    assert texture.color.weight.grad[:, 0].abs().min() > 0 and texture.color.weight.grad[:, 1:].abs().max() == 0
    with torch.no_grad():
        texture.color.weight.normal_(0.0, 0.3)
    drawn = texture(features, c, eps)
    assert drawn.shape == (1, 3, 40, 40) and drawn.std() > 0.01
    # eps's first two components move the pattern by whole pixels: 64 * (ndtr(eps') - ndtr(0)) = (5, 3)
    shifted = eps.clone()
    shifted[0, :2] = torch.special.ndtri(torch.tensor([0.5 + 5 / 64, 0.5 + 3 / 64]))
    moved = texture(features, c, shifted)
    assert torch.allclose(moved[..., :-3, :-5], drawn[..., 3:, 5:], atol=1e-4)
    assert not torch.allclose(moved, drawn, atol=1e-2)
    assert torch.equal(texture(features, c, eps), texture(features, c, eps))  # one eps, one image
    texture.zero_grad()
    texture(features, torch.ones(1, 8), eps).square().sum().backward()
    assert texture.frequency.grad.abs().sum() > 0 and texture.gate_text.weight.grad.abs().sum() > 0
    # the colour follows the features: other features, another colour of the same texture
    other = features.roll(1, dims=1)
    with torch.no_grad():
        assert not torch.allclose(texture(other, c, eps), drawn, atol=1e-2)
    # the condition picks textures: a closed gate draws nothing
    with torch.no_grad():
        texture.gate_text.weight.fill_(-10.0)
    assert texture(features, torch.ones(1, 8), eps).abs().max() < 1e-3
    # Stage-II with it: trained-layout checkpoints of the paper network load into it, and the
    # inference copy draws the same
    config = StackGANConfig.from_preset("tiny", g_texture=True)
    g2 = Stage2Generator(config).eval()
    paper = Stage2Generator(StackGANConfig.from_preset("tiny"))
    missing, unexpected = g2.load_state_dict(paper.state_dict(), strict=False)
    from stackgan.models import added_by_flags
    assert not unexpected and sorted(missing) == sorted(added_by_flags(g2, paper.state_dict()))
    inputs = (torch.randn(2, 3, 64, 64).tanh(), torch.randn(2, config.text_dim), torch.randn(2, config.condition_dim))
    # loaded so, it draws what the paper network drew until its textures get a colour
    assert torch.allclose(g2(*inputs)[0], paper.eval()(*inputs)[0], atol=1e-6)
    with torch.no_grad():
        g2.texture.color.bias.normal_(0.0, 0.3)
    assert not torch.allclose(g2(*inputs)[0], paper(*inputs)[0], atol=1e-3)
    assert torch.allclose(fold_batchnorm(g2)(*inputs)[0], g2(*inputs)[0], atol=1e-5)


def test_texture_waves_read_by_per_image_weights_equal_the_waves_at_each_images_phase():
    from stackgan.models import TextureSynthesis
    torch.manual_seed(0)
    texture = TextureSynthesis(channels=4, condition_dim=8)
    texture.reset_parameters()
    with torch.no_grad():
        texture.color.weight.normal_(0.0, 0.3)
        texture.shape[0].bias.normal_(0.0, 0.3)
    features, c, eps = torch.randn(3, 4, 32, 48), torch.randn(3, 8), torch.randn(3, 8)
    # the module's first layer on the waves themselves, built per image at its position + 64 * offset
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(48.0), indexing="ij")
    position = torch.stack([x, y])[None] + 64 * torch.special.ndtr(eps[:, :2])[:, :, None, None]
    angle = 2 * torch.pi * torch.einsum("kd,bdhw->bkhw", texture.frequency, position)
    shapes = texture.shape(torch.cat([angle.sin(), angle.cos()], dim=1))
    expected = torch.einsum("bkhw,bkchw->bchw", texture.gates(features, c) * shapes,
                            texture.color(features).view(3, -1, 3, 32, 48))
    assert torch.allclose(texture(features, c, eps), expected, atol=1e-4)


def test_zero_mean_textures_modulate_the_colour_under_them_without_tinting_it():
    from stackgan.models import TextureSynthesis
    torch.manual_seed(0)
    features, c, eps = torch.ones(1, 4, 48, 48), torch.zeros(1, 8), torch.zeros(1, 8)
    drawn = {}
    for zero_mean in (False, True):
        texture = TextureSynthesis(channels=4, condition_dim=8, zero_mean=zero_mean)
        texture.reset_parameters()
        with torch.no_grad():
            texture.color.bias.fill_(0.5)    # every texture a light shade, as --texture_start draws them
            drawn[zero_mean] = texture(features, c, eps)
    # kept, the textures (ReLUs of waves) tint the image; taken off their local mean, they do not
    assert drawn[False].mean() > 0.1
    inner = drawn[True][..., 8:-8, 8:-8]
    assert inner.mean().abs() < 0.1 * inner.std() and inner.std() > 0.02
    with pytest.raises(ValueError, match="texture_zero_mean needs g_texture"):
        StackGANConfig.from_preset("tiny", texture_zero_mean=True)
    config = StackGANConfig.from_preset("tiny", g_texture=True, texture_zero_mean=True)
    assert Stage2Generator(config).texture.zero_mean and StackGANConfig.from_dict(config.to_dict()).texture_zero_mean
