import pytest

from stackgan import StackGANConfig
from stackgan.config import PRESETS


def test_presets_build_and_record_their_name():
    for name in ("cub", "coco", "shapes", "tiny"):
        config = StackGANConfig.from_preset(name)
        assert config.preset == name
        assert config.gf_dim == PRESETS[name]["gf_dim"]


def test_overrides_apply():
    config = StackGANConfig.from_preset("cub", text_dim=1024, upsample="pixelshuffle")
    assert (config.text_dim, config.upsample, config.gf_dim) == (1024, "pixelshuffle", 128)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown preset 'birds'.*'cub'"):
        StackGANConfig.from_preset("birds")


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match=r"unknown StackGANConfig key\(s\) \['gf_dims'\]"):
        StackGANConfig.from_preset("tiny", gf_dims=3)


@pytest.mark.parametrize("key,value", [("upsample", "bilinear"), ("gan_loss", "wgan"), ("d_norm", "layer"),
                                       ("gradient_penalty", "r2"), ("ca_activation", "tanh"),
                                       ("d_matching", "dot")])
def test_bad_choice_names_key_and_value(key, value):
    with pytest.raises(ValueError, match=rf"StackGANConfig.{key}='{value}' is not one of"):
        StackGANConfig.from_preset("tiny", **{key: value})


@pytest.mark.parametrize("key,value", [("gf_dim", 20), ("z_dim", 0), ("ema_decay", 1.0), ("stage1_size", 128)])
def test_bad_numbers_are_refused(key, value):
    with pytest.raises(ValueError, match=key):
        StackGANConfig.from_preset("tiny", **{key: value})


def test_round_trip_through_dict():
    config = StackGANConfig.from_preset("shapes", gan_loss="hinge", adam_betas=(0.0, 0.9))
    assert StackGANConfig.from_dict(config.to_dict()) == config


def test_stabilisers_are_off_by_default():
    config = StackGANConfig()
    assert (config.d_norm, config.gan_loss, config.generator_loss, config.gradient_penalty) == \
        ("batch", "bce", "non_saturating", "none")
    assert config.mode_seeking_weight == 0.0 and config.use_ema is False
    assert config.gradient_penalty_weight == 0.0
    assert StackGANConfig(gradient_penalty="r1").gradient_penalty_weight == 10.0
    assert StackGANConfig(gradient_penalty="ma_gp").gradient_penalty_weight == 2.0
    assert StackGANConfig(kl_weight=2.0).kl_weight == 2.0
