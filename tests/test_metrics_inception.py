"""FID-Inception plumbing with random weights (the real file cannot be downloaded in CI)."""

import pytest
import torch
from safetensors.torch import save_file

from stackgan.metrics import inception
from stackgan.metrics.inception import FIDInceptionV3, load_fid_inception, resize_images


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return FIDInceptionV3().eval()


def test_state_dict_matches_pt_inception_file(network):
    state = network.state_dict()
    assert len(state) == 566
    assert sum(p.numel() for p in network.parameters()) == 23_850_960
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_6e.branch7x7dbl_5.conv.weight"].shape == (192, 192, 1, 7)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert state["fc.weight"].shape == (1008, 2048)
    assert not any(key.startswith("AuxLogits") for key in state)


def test_forward_shapes_from_any_size(network):
    with torch.no_grad():
        features = network(torch.rand(2, 3, 64, 64))
        logits = network.classify(features)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)
    assert torch.isfinite(features).all() and (features >= 0).all()   # mean of ReLU outputs


def test_tf_average_pool_ignores_padding():
    ones = torch.ones(1, 1, 5, 5)
    assert torch.allclose(inception._tf_avg_pool(ones), ones)   # count_include_pad=True gives 4/9


def test_resize_methods():
    images = torch.rand(2, 3, 64, 64)
    for method in inception.RESIZE_METHODS:
        assert resize_images(images, 299, method).shape == (2, 3, 299, 299)
    with pytest.raises(ValueError, match="nearest"):
        resize_images(images, 299, "nearest")


def test_load_from_pth_and_safetensors(tmp_path, network):
    state = {key: value.clone() for key, value in network.state_dict().items()}
    torch.save(state, tmp_path / inception.FID_WEIGHTS_FILE)
    save_file(state, str(tmp_path / "fid.safetensors"))
    for path in (tmp_path / inception.FID_WEIGHTS_FILE, tmp_path / "fid.safetensors"):
        loaded = load_fid_inception(path, resize="bicubic-antialias")
        assert not loaded.training and loaded.resize == "bicubic-antialias"
        assert not any(p.requires_grad for p in loaded.parameters())
        assert all(torch.equal(value, state[key]) for key, value in loaded.state_dict().items())


def test_weights_from_environment(tmp_path, monkeypatch, network):
    path = tmp_path / inception.FID_WEIGHTS_FILE
    torch.save(network.state_dict(), path)
    monkeypatch.setenv(inception.FID_WEIGHTS_ENV, str(path))
    assert inception.resolve_fid_weights() == path


def test_missing_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv(inception.FID_WEIGHTS_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05-6726825d.pth"):
        load_fid_inception()
    with pytest.raises(FileNotFoundError, match="STACKGAN_FID_WEIGHTS"):
        load_fid_inception(tmp_path / "absent.pth")


def test_wrong_state_dict_is_rejected(tmp_path):
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="Missing key"):
        load_fid_inception(tmp_path / "bad.pth")
