"""Embedded datasets, generated on the fly (nothing is downloaded).

``shapes`` draws small RGB images of one coloured shape (disk, square, triangle, cross) on a noisy
background. Its labels depend only on the shape, and the shape's pixels are known (``masks``), so
an explanation can be checked against where the evidence really is.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["CLASSES", "Shapes", "shapes"]

CLASSES = ("disk", "square", "triangle", "cross")


class Shapes(NamedTuple):
    """A generated dataset: ``images`` (N, H, W, 3) float32 in [0, 1], ``labels`` (N,) int32 class
    indices into :data:`CLASSES`, and ``masks`` (N, H, W) bool, the pixels of each shape.

    Example:
      >>> from jaxplain.data import shapes
      >>> d = shapes(4, size=12)
      >>> d.masks.shape, bool(d.masks.any(axis=(1, 2)).all())
      ((4, 12, 12), True)

    References:
      Adebayo et al. (2018), "Sanity Checks for Saliency Maps", NeurIPS (explanations checked
      against known evidence).
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray


def shapes(n: int, *, size: int = 32, seed: int = 0, noise: float = 0.08) -> Shapes:
    """Generates ``n`` images of one shape each, with balanced classes.

    Args:
      n: number of images (``>= 1``).
      size: image height and width in pixels (``>= 12``).
      seed: seed of the NumPy generator; the same seed gives the same data.
      noise: standard deviation of the Gaussian pixel noise.

    Returns:
      A :class:`Shapes` tuple ``(images, labels, masks)``.

    Example:
      >>> import numpy as np
      >>> from jaxplain.data import shapes
      >>> d = shapes(8, size=16, seed=1)
      >>> d.images.shape, d.images.dtype.name, np.bincount(d.labels).tolist()
      ((8, 16, 16, 3), 'float32', [2, 2, 2, 2])

    References:
      A synthetic stand-in for the image datasets of the seed lectures (no download); the idea of
      checking explanations against known object pixels follows Adebayo et al. (2018), "Sanity
      Checks for Saliency Maps", NeurIPS.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"jaxplain.data.shapes: n must be an int >= 1, got {n!r}.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 12:
        raise ValueError(f"jaxplain.data.shapes: size must be an int >= 12, got {size!r}.")
    if not noise >= 0:
        raise ValueError(f"jaxplain.data.shapes: noise must be >= 0, got {noise!r}.")
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % len(CLASSES)).astype(np.int32)
    r = rng.uniform(0.16, 0.3, n) * size
    cy = rng.uniform(r + 1, size - r - 1)
    cx = rng.uniform(r + 1, size - r - 1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dy = yy[None] - cy[:, None, None]
    dx = xx[None] - cx[:, None, None]
    rr = r[:, None, None]
    disk = dy**2 + dx**2 <= rr**2
    square = np.maximum(np.abs(dy), np.abs(dx)) <= 0.8 * rr
    triangle = (dy <= 0.8 * rr) & (np.abs(dx) <= 0.65 * (dy + rr))
    bar = rr / 3
    cross = ((np.abs(dy) <= bar) & (np.abs(dx) <= rr)) | ((np.abs(dx) <= bar) & (np.abs(dy) <= rr))
    masks = np.select([labels[:, None, None] == k for k in range(4)], [disk, square, triangle, cross])

    background = rng.uniform(0.0, 0.35, (n, 1, 1, 3))
    slope = rng.uniform(-0.15, 0.15, (n, 1, 1, 3))
    images = background + slope * (yy[None, :, :, None] / size - 0.5)
    colour = rng.uniform(0.45, 1.0, (n, 1, 1, 3))
    images = np.where(masks[..., None], colour, images)
    images = images + noise * rng.standard_normal(images.shape)
    images = np.clip(images, 0.0, 1.0).astype(np.float32)
    order = rng.permutation(n)
    return Shapes(images[order], labels[order], masks[order].astype(bool))
