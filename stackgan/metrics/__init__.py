"""Evaluation metrics that run offline on CPU: FID/KID/IS with a pure-torch TF-Inception,
per-caption diversity and MS-SSIM. The Shapes attribute oracle is in
`stackgan.metrics.shapes_oracle` (not re-exported here, so that `python -m
stackgan.metrics.shapes_oracle` runs it cleanly).

Importing this package loads no weights.
"""

from .diversity import diversity_ratio, mean_pairwise_distance, mean_pairwise_ms_ssim, ms_ssim
from .fid import (FeatureStatistics, extract_features, feature_statistics, fid_from_statistics,
                  frechet_distance, images_to_tensor, kernel_inception_distance)
from .inception import FIDInceptionV3, load_fid_inception, resolve_fid_weights
from .inception_score import inception_score

__all__ = [
    "FIDInceptionV3", "FeatureStatistics", "diversity_ratio", "extract_features",
    "feature_statistics", "fid_from_statistics", "frechet_distance", "images_to_tensor",
    "inception_score", "kernel_inception_distance", "load_fid_inception", "mean_pairwise_distance",
    "mean_pairwise_ms_ssim", "ms_ssim", "resolve_fid_weights",
]
