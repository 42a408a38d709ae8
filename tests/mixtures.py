"""Gaussian mixtures shared by the t-SNE parity tests and benchmarks/tsne.py."""

import numpy as np


def mixture(n: int = 10_000, dim: int = 50, classes: int = 10, seed: int = 0):
    """``(x, labels)``: ``n`` float32 points of a ``classes``-cluster Gaussian mixture in ``dim``
    dimensions (centres N(0, 2^2 I), unit noise), labels drawn uniformly."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, dim)) * 2.0
    labels = rng.integers(0, classes, n)
    x = (centers[labels] + rng.normal(size=(n, dim))).astype(np.float32)
    return x, labels
