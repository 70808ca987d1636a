"""Per-caption diversity: does one caption with different noise give different images?

A generator that collapses draws near-identical images for a caption. We measure, per caption,
the mean pairwise feature distance of its N samples and compare it with the same measure on real
images that show the caption's attributes: the diversity ratio generated / real is ~1 for a
healthy model and -> 0 under mode collapse. MS-SSIM among samples (Wang et al., 2003; used for
GAN diversity by Odena et al., ICML 2017) is the pixel-space counterpart: higher = less diverse.
"""

import itertools

import numpy as np
import torch
import torch.nn.functional as F

# Wang, Simoncelli & Bovik, "Multi-scale structural similarity", 2003: per-scale exponents.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


def mean_pairwise_distance(features):
    """Mean Euclidean distance over all pairs i < j of features (N, D); N >= 2."""
    features = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need features (N >= 2, D), got {tuple(features.shape)}")
    distances = torch.cdist(features, features)
    n = len(features)
    return float(distances.sum() / (n * (n - 1)))       # diagonal is 0; each pair counted twice


def diversity_ratio(generated_groups, real_groups):
    """Diversity of generated samples relative to real images, one group per caption.

    Args:
        generated_groups: list of (N_i, D) features, the samples of caption i.
        real_groups: list of (M_i, D) features of real images with caption i's attributes.

    Returns a dict: `generated` and `real` (mean over captions of the mean pairwise distance),
    `ratio` = generated / real, and `num_groups`.
    """
    if len(generated_groups) != len(real_groups) or not generated_groups:
        raise ValueError(f"need matching non-empty group lists, got {len(generated_groups)} "
                         f"generated and {len(real_groups)} real")
    generated = float(np.mean([mean_pairwise_distance(g) for g in generated_groups]))
    real = float(np.mean([mean_pairwise_distance(r) for r in real_groups]))
    return {"generated": generated, "real": real, "ratio": generated / real,
            "num_groups": len(generated_groups)}


def _gaussian_kernel(dtype):
    coords = torch.arange(SSIM_WINDOW, dtype=dtype) - (SSIM_WINDOW - 1) / 2
    kernel = torch.exp(-coords ** 2 / (2 * SSIM_SIGMA ** 2))
    return kernel / kernel.sum()


def _band(size, kernel):
    """(size, size - 10) matrix M with x @ M = x filtered by `kernel` along its last axis, 'valid'
    (no padding, as Wang et al.'s reference code). A matmul is ~10x faster than a depthwise
    conv2d on CPU here."""
    outputs = size - len(kernel) + 1
    band = torch.zeros(size, outputs, dtype=kernel.dtype)
    columns = torch.arange(outputs)
    for tap, weight in enumerate(kernel):
        band[columns + tap, columns] = weight
    return band


def _blur(x, kernel):
    """Separable 11x11 Gaussian blur of (B, C, H, W), 'valid' -> (B, C, H - 10, W - 10)."""
    return _band(x.shape[-2], kernel).T @ x @ _band(x.shape[-1], kernel)


def _ssim_terms(x, y, kernel, data_range):
    """Mean luminance*contrast*structure (SSIM) and contrast*structure (cs) per image."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _blur(x, kernel), _blur(y, kernel)
    var_x = _blur(x * x, kernel) - mu_x ** 2
    var_y = _blur(y * y, kernel) - mu_y ** 2
    cov_xy = _blur(x * y, kernel) - mu_x * mu_y
    # cs = (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2); l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    cs_map = (2 * cov_xy + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)
    return (luminance * cs_map).mean(dim=(1, 2, 3)), cs_map.mean(dim=(1, 2, 3))


def min_ms_ssim_size(scales=len(MS_SSIM_WEIGHTS)):
    """Smallest image side for MS-SSIM: the coarsest scale must still hold one 11x11 window."""
    return SSIM_WINDOW * 2 ** (scales - 1)


def ms_ssim(x, y, data_range=1.0, weights=MS_SSIM_WEIGHTS):
    """Multi-scale SSIM between image batches x, y (B, C, H, W); returns (B,) values in [0, 1].

    MS-SSIM = SSIM_M^{w_M} * prod_{j < M} cs_j^{w_j}, halving the image (2x2 mean) between
    scales; channels are averaged at each scale. Negative per-scale means are clamped to 0 before
    the fractional power (as TensorFlow's ssim_multiscale does). 256 px images allow the 5
    standard scales; 64 px ones do not (see `min_ms_ssim_size`).
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"need two batches (B, C, H, W) of one shape, got {x.shape}, {y.shape}")
    if min(x.shape[-2:]) < min_ms_ssim_size(len(weights)):
        raise ValueError(f"MS-SSIM with {len(weights)} scales needs images of at least "
                         f"{min_ms_ssim_size(len(weights))} px, got {tuple(x.shape[-2:])}")
    x, y = x.double(), y.double()
    kernel = _gaussian_kernel(x.dtype)
    weights = torch.tensor(weights, dtype=x.dtype)
    contrast_structure = []
    for scale in range(len(weights)):
        ssim, cs = _ssim_terms(x, y, kernel, data_range)
        contrast_structure.append(cs)
        if scale < len(weights) - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    values = torch.stack(contrast_structure[:-1] + [ssim], dim=1).clamp(min=0)   # (B, M)
    return torch.prod(values ** weights, dim=1)


def mean_pairwise_ms_ssim(images, data_range=1.0, pairs_per_batch=16):
    """Mean MS-SSIM over all pairs i < j of images (N, C, H, W); N >= 2. Lower = more diverse."""
    if len(images) < 2:
        raise ValueError(f"need at least 2 images, got {len(images)}")
    pairs = list(itertools.combinations(range(len(images)), 2))
    values = []
    for start in range(0, len(pairs), pairs_per_batch):
        first, second = zip(*pairs[start:start + pairs_per_batch])
        values.append(ms_ssim(images[list(first)], images[list(second)], data_range))
    return float(torch.cat(values).mean())
