"""Fréchet distance, statistics files and KID against closed forms and hand computations."""

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from stackgan.metrics.fid import (FeatureStatistics, check_comparable, extract_features,
                                  feature_statistics, fid_from_statistics, frechet_distance,
                                  kernel_inception_distance, mmd2_unbiased)


def random_covariance(rng, dim, samples):
    features = rng.normal(size=(samples, dim)) @ rng.normal(size=(dim, dim))
    return np.cov(features, rowvar=False)


def scipy_frechet(mu1, sigma1, mu2, sigma2):
    root = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return ((mu1 - mu2) ** 2).sum() + np.trace(sigma1 + sigma2 - 2 * root)


def test_closed_form_gaussians():
    # 1-D: d^2 = (m1 - m2)^2 + (s1 - s2)^2.
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1, rel=1e-12)
    # Diagonal covariances: sum_i (sqrt(a_i) - sqrt(b_i))^2.
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.0])
    expected = 3.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(np.zeros(3), np.diag(a), np.ones(3), np.diag(b)) == pytest.approx(
        expected, rel=1e-12)
    # Scaled covariance: tr(S + c^2 S - 2 c S) = (1 - c)^2 tr(S).
    sigma = random_covariance(np.random.default_rng(1), 8, 50)
    assert frechet_distance(np.zeros(8), sigma, np.zeros(8), 4 * sigma) == pytest.approx(
        np.trace(sigma), rel=1e-9)


@pytest.mark.parametrize("dim,samples", [(16, 100), (64, 300), (64, 40)])   # last: rank-deficient
def test_agrees_with_scipy_sqrtm(dim, samples):
    rng = np.random.default_rng(dim + samples)
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    sigma1, sigma2 = random_covariance(rng, dim, samples), random_covariance(rng, dim, samples)
    ours = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert ours == pytest.approx(scipy_frechet(mu1, sigma1, mu2, sigma2), rel=1e-6)
    # d(S, S) = 0 up to rounding: sqrt of ~1e-12 eigenvalue noise, relative to tr(S).
    scale = np.trace(sigma1)
    assert frechet_distance(mu1, sigma1, mu1, sigma1) == pytest.approx(0, abs=1e-6 * scale)


def test_statistics_are_float64_unbiased():
    features = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    stats = feature_statistics(features, dataset="shapes")
    assert stats.mu.dtype == np.float64 and stats.sigma.dtype == np.float64
    np.testing.assert_allclose(stats.sigma, np.cov(features.astype(np.float64), rowvar=False))
    assert stats.metadata == {"dataset": "shapes", "num_samples": 20, "feature_dim": 5}


def test_statistics_round_trip(tmp_path):
    stats = feature_statistics(np.random.default_rng(0).normal(size=(10, 4)), extractor="oracle",
                               resize="bilinear", image_size=64, dataset="shapes")
    stats.save(tmp_path / "ref.npz")
    loaded = FeatureStatistics.load(tmp_path / "ref.npz")
    np.testing.assert_array_equal(loaded.mu, stats.mu)
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)
    assert loaded.metadata == stats.metadata
    assert fid_from_statistics(loaded, stats) == pytest.approx(0, abs=1e-9)


def test_pytorch_fid_file_and_comparability(tmp_path):
    np.savez(tmp_path / "plain.npz", mu=np.zeros(2), sigma=np.eye(2))
    plain = FeatureStatistics.load(tmp_path / "plain.npz")
    assert plain.metadata == {}
    ours = FeatureStatistics(np.ones(2), np.eye(2), {"resize": "bilinear", "image_size": 256})
    assert fid_from_statistics(plain, ours) == pytest.approx(2.0)
    other = FeatureStatistics(np.ones(2), np.eye(2), {"resize": "bilinear", "image_size": 64})
    with pytest.raises(ValueError, match="image_size"):
        check_comparable(ours, other)
    with pytest.raises(ValueError, match="only str"):
        FeatureStatistics(np.ones(2), np.eye(2), {"bad": None}).save(tmp_path / "x.npz")


def test_mmd_by_hand():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(5, 3)) + 1

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    within_x = sum(k(x[i], x[j]) for i in range(4) for j in range(4) if i != j) / 12
    within_y = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    across = sum(k(a, b) for a in x for b in y) / 20
    assert mmd2_unbiased(x, y) == pytest.approx(within_x + within_y - 2 * across, rel=1e-12)


def test_kid_subsets():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 4)) + 0.5
    mean, std = kernel_inception_distance(x, y, num_subsets=5, subset_size=100)
    assert mean == pytest.approx(mmd2_unbiased(x, y), rel=1e-12) and std == pytest.approx(0)
    mean, std = kernel_inception_distance(x, y, num_subsets=20, subset_size=10, seed=1)
    assert mean > 0 and std > 0
    assert (mean, std) == kernel_inception_distance(x, y, num_subsets=20, subset_size=10, seed=1)
    same, _ = kernel_inception_distance(rng.normal(size=(400, 4)), rng.normal(size=(400, 4)),
                                        num_subsets=10, subset_size=200)
    assert abs(same) < 0.1 * mean


def test_extract_features_from_pil_images():
    images = [Image.new("RGB", (8, 8), (255, 0, 51 * i)) for i in range(5)]
    features = extract_features(lambda batch: batch.mean(dim=(2, 3)), images, batch_size=2)
    assert features.dtype == np.float64 and features.shape == (5, 3)
    np.testing.assert_allclose(features[:, 2], [0.2 * i for i in range(5)], atol=1e-6)
    tensor_features = extract_features(lambda b: b.mean(dim=(2, 3)), torch.ones(3, 3, 4, 4))
    np.testing.assert_allclose(tensor_features, np.ones((3, 3)))
    with pytest.raises(ValueError, match="one size"):
        extract_features(lambda b: b, [Image.new("RGB", (8, 8)), Image.new("RGB", (4, 4))])
