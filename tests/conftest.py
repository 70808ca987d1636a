"""Shared fixtures of the data tests (prefixed data_ so they never clash with other suites)."""

import hashlib

import numpy as np
import pytest
import torch


class HashEncoder:
    """A stand-in for TextEncoder: a fixed random vector per caption, no model, and a count of
    the captions it was asked to embed (to see when a cache was used instead)."""

    model_id = "test/hash-encoder"
    dim = 16
    max_tokens = 12

    def __init__(self):
        self.calls = 0

    def encode(self, captions, return_truncation=False):
        self.calls += len(captions)
        seeds = [int.from_bytes(hashlib.sha256(c.encode()).digest()[:8], "little") for c in captions]
        rows = [np.random.default_rng(seed).standard_normal(self.dim) for seed in seeds]
        embeddings = torch.from_numpy(np.array(rows, dtype=np.float32).reshape(len(captions), self.dim))
        truncated = [len(c.split()) > self.max_tokens for c in captions]
        return (embeddings, truncated) if return_truncation else embeddings


@pytest.fixture
def data_encoder():
    """A fresh HashEncoder."""
    return HashEncoder()


@pytest.fixture(scope="session")
def data_shapes_dir(tmp_path_factory):
    """A small Shapes dataset on disk: 16 train, 4 test, 4 held-out images."""
    from stackgan.data.shapes import generate

    out = tmp_path_factory.mktemp("shapes")
    generate(out, num_images=20, seed=0, test_fraction=0.2, num_heldout=4, workers=1, progress=False)
    return out
