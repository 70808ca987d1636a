"""Inception Score against hand computations."""

import numpy as np
import pytest

from stackgan.metrics.inception_score import inception_score


def test_uniform_predictions_score_one():
    assert inception_score(np.zeros((20, 7)), splits=10) == pytest.approx((1.0, 0.0))


def test_confident_and_balanced_scores_number_of_classes():
    logits = np.full((40, 4), -1e3)
    logits[np.arange(40), np.arange(40) % 4] = 0.0       # each split holds all 4 classes
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(4.0) and std == pytest.approx(0.0, abs=1e-9)


def test_matches_hand_computation():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 5)) * 2
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = []
    for part in (p[0:3], p[3:7]):                       # boundaries i*n//splits with n=7, splits=2
        p_y = part.mean(axis=0)
        scores.append(np.exp(np.mean([(row * np.log(row / p_y)).sum() for row in part])))
    mean, std = inception_score(logits, splits=2)
    assert mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert std == pytest.approx(np.std(scores), rel=1e-9)


def test_too_few_samples():
    with pytest.raises(ValueError, match="splits"):
        inception_score(np.zeros((5, 3)), splits=10)
