"""Pairwise feature diversity and MS-SSIM identities."""

import numpy as np
import pytest
import torch

from stackgan.metrics.diversity import (MS_SSIM_WEIGHTS, SSIM_SIGMA, SSIM_WINDOW,
                                        diversity_ratio, mean_pairwise_distance,
                                        mean_pairwise_ms_ssim, min_ms_ssim_size, ms_ssim)


def test_mean_pairwise_distance_by_hand():
    points = [[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]]      # distances 5, 4, 3
    assert mean_pairwise_distance(points) == pytest.approx(4.0)


def test_diversity_ratio():
    generated = [np.array([[0.0], [1.0]]), np.array([[0.0], [3.0]])]   # mean distance 2
    real = [np.array([[0.0], [4.0]]), np.array([[0.0], [4.0], [4.0]])]   # 4 and 8/3
    result = diversity_ratio(generated, real)
    assert result["generated"] == pytest.approx(2.0)
    assert result["real"] == pytest.approx(10 / 3)
    assert result["ratio"] == pytest.approx(0.6) and result["num_groups"] == 2
    collapsed = diversity_ratio([np.ones((4, 3))], [np.eye(3)])
    assert collapsed["ratio"] == 0.0


def test_ms_ssim_identities():
    torch.manual_seed(0)
    x, y = torch.rand(1, 3, 176, 176), torch.rand(1, 3, 176, 176)
    assert torch.allclose(ms_ssim(x, x), torch.ones(1, dtype=torch.float64))
    assert torch.allclose(ms_ssim(x, y), ms_ssim(y, x))
    noisy = [ms_ssim(x, (x + s * torch.randn_like(x)).clamp(0, 1)) for s in (0.05, 0.2)]
    assert 1 > noisy[0] > noisy[1] > ms_ssim(x, y) >= 0


def test_single_scale_ssim_by_hand():
    rng = np.random.default_rng(0)
    x, y = rng.random((SSIM_WINDOW, SSIM_WINDOW)), rng.random((SSIM_WINDOW, SSIM_WINDOW))
    g = np.exp(-(np.arange(SSIM_WINDOW) - 5.0) ** 2 / (2 * SSIM_SIGMA ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()          # one window covers the whole image
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * x * x).sum() - mx ** 2, (w * y * y).sum() - my ** 2
    cxy = (w * x * y).sum() - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    expected = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    ours = ms_ssim(torch.tensor(x)[None, None], torch.tensor(y)[None, None], weights=(1.0,))
    assert ours.item() == pytest.approx(max(expected, 0.0), rel=1e-9, abs=1e-12)


def test_pairwise_ms_ssim_and_size_limit():
    assert min_ms_ssim_size() == 176 and len(MS_SSIM_WEIGHTS) == 5
    same = torch.rand(1, 3, 176, 176).repeat(3, 1, 1, 1)
    assert mean_pairwise_ms_ssim(same, pairs_per_batch=2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="176"):
        ms_ssim(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
