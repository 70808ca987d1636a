"""Feature statistics, Fréchet distance (FID) and Kernel Inception Distance (KID).

The feature extractor is any callable mapping a float batch (B, 3, H, W) in [0, 1] to (B, D)
features: `FIDInceptionV3` for the standard FID, or the Shapes oracle for a domain FID that
needs no external weights. Statistics are kept in float64.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

# Metadata that must agree before two sets of statistics may be compared: a different network,
# resize or input resolution changes the features, not just the images.
COMPARABLE_KEYS = ("extractor", "resize", "image_size")


def images_to_tensor(images):
    """PIL images or uint8 arrays (H, W, 3) of one size -> float tensor (B, 3, H, W) in [0, 1]."""
    arrays = [np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
              for image in images]
    shapes = {array.shape for array in arrays}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"expected RGB images of one size, got shapes {sorted(shapes)}")
    if arrays[0].dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arrays[0].dtype}")
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch.float().div(255.0)


def module_device(extractor):
    """Where an nn.Module's parameters live (CPU for plain callables)."""
    if isinstance(extractor, torch.nn.Module):
        return next(extractor.parameters(), torch.empty(0)).device
    return torch.device("cpu")


@torch.no_grad()
def extract_features(extractor, images, batch_size=50, progress=None):
    """Run `extractor` over `images` in batches; returns float64 features (N, D).

    Args:
        extractor: callable (B, 3, H, W) float in [0, 1] -> (B, D) tensor, in eval mode.
        images: a sequence of PIL images / uint8 arrays, or a float tensor (N, 3, H, W) in [0, 1].
        batch_size: images per forward pass.
        progress: optional tqdm-like bar; `update(n)` is called after each batch.
    """
    features = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        if not torch.is_tensor(batch):
            batch = images_to_tensor(batch)
        features.append(extractor(batch.to(module_device(extractor))).double().cpu().numpy())
        if progress is not None:
            progress.update(len(batch))
    if not features:
        raise ValueError("no images to extract features from")
    return np.concatenate(features)


@dataclass
class FeatureStatistics:
    """Mean and covariance of features, plus how they were made (extractor, resize, image_size,
    num_samples, dataset, ...). Saved as .npz with keys `mu`, `sigma` and one key per metadata
    field, so pytorch-fid can read `mu` and `sigma` from it too."""

    mu: np.ndarray
    sigma: np.ndarray
    metadata: dict = field(default_factory=dict)

    def save(self, path):
        """Write `path` (.npz)."""
        for key, value in self.metadata.items():
            if not isinstance(value, (str, int, float, bool)):
                raise ValueError(f"metadata {key}={value!r}: only str, int, float, bool are stored")
        metadata = {key: np.asarray(value) for key, value in self.metadata.items()}
        np.savez(path, mu=self.mu, sigma=self.sigma, **metadata)

    @classmethod
    def load(cls, path):
        """Read an .npz written by `save` (or by pytorch-fid: then the metadata is empty)."""
        with np.load(Path(path), allow_pickle=False) as stored:
            if "mu" not in stored or "sigma" not in stored:
                raise ValueError(f"{path} is not a statistics file: it lacks 'mu' or 'sigma'")
            metadata = {key: stored[key].item() for key in stored.files
                        if key not in ("mu", "sigma")}
            return cls(stored["mu"].astype(np.float64), stored["sigma"].astype(np.float64),
                       metadata)


def feature_statistics(features, **metadata):
    """float64 mean and unbiased covariance (ddof=1, as pytorch-fid) of features (N, D)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {features.shape}")
    metadata.setdefault("num_samples", len(features))
    metadata.setdefault("feature_dim", features.shape[1])
    return FeatureStatistics(features.mean(axis=0), np.cov(features, rowvar=False), metadata)


def _psd_sqrt(matrix):
    # Symmetric square root through eigh; tiny negative eigenvalues are rounding noise.
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Squared Fréchet (Wasserstein-2) distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)).
    sigma1 sigma2 is similar to the symmetric PSD matrix M = sigma1^(1/2) sigma2 sigma1^(1/2), so
    tr((sigma1 sigma2)^(1/2)) = sum_i sqrt(lambda_i(M)) with real lambda_i from eigvalsh: no
    complex sqrtm, no "imaginary component" fix-ups.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    difference = mu1 - mu2
    return float(difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def check_comparable(stats1, stats2):
    """Raise ValueError when two statistics were made with a different extractor, resize or
    image size (fields missing from either side, e.g. pytorch-fid files, are not checked)."""
    for key in COMPARABLE_KEYS:
        if key in stats1.metadata and key in stats2.metadata:
            if stats1.metadata[key] != stats2.metadata[key]:
                raise ValueError(
                    f"statistics are not comparable: {key} is {stats1.metadata[key]!r} vs "
                    f"{stats2.metadata[key]!r}; recompute the reference with the same {key}")


def fid_from_statistics(stats1, stats2):
    """FID between two FeatureStatistics, after `check_comparable`."""
    check_comparable(stats1, stats2)
    return frechet_distance(stats1.mu, stats1.sigma, stats2.mu, stats2.sigma)


def polynomial_kernel(x, y):
    """KID kernel k(x, y) = (x . y / d + 1)^3 (Binkowski et al., ICLR 2018)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y):
    """Unbiased MMD^2 with the polynomial kernel, samples x (m, d) and y (n, d):
    sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (n(n-1)) - 2 mean k(x_i, y_j).
    """
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kernel_inception_distance(features1, features2, num_subsets=100, subset_size=1000, seed=0):
    """KID: unbiased MMD^2 averaged over random subsets drawn without replacement.

    Returns (mean, std) over `num_subsets` subsets of `min(subset_size, N1, N2)` samples each.
    """
    features1 = np.asarray(features1, np.float64)
    features2 = np.asarray(features2, np.float64)
    size = min(subset_size, len(features1), len(features2))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(features1)} and "
                         f"{len(features2)}")
    if size == len(features1) == len(features2):
        return mmd2_unbiased(features1, features2), 0.0   # every "subset" is the whole set
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(features1[rng.choice(len(features1), size, replace=False)],
                            features2[rng.choice(len(features2), size, replace=False)])
              for _ in range(num_subsets)]
    return float(np.mean(values)), float(np.std(values))
