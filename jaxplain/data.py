"""Embedded datasets, generated on the fly (nothing is downloaded).

``shapes`` draws small RGB images of one coloured shape (disk, square, triangle, cross) on a noisy
background. Its labels depend only on the shape, and the shape's pixels are known (``masks``), so
an explanation can be checked against where the evidence really is.

``token_order`` draws token sequences holding the token :data:`TOKEN_A` once and :data:`TOKEN_B`
once among filler tokens, labelled 1 where A comes before B; the two decisive positions are known
(``positions``), so an attribution to the tokens can be checked the same way.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["CLASSES", "Shapes", "shapes", "PAD", "TOKEN_A", "TOKEN_B", "TokenOrder", "token_order"]

CLASSES = ("disk", "square", "triangle", "cross")

#: The token ids of :func:`token_order`: padding, the first and the second decisive token. The
#: filler tokens are the ids ``3 .. vocab - 1``.
PAD, TOKEN_A, TOKEN_B = 0, 1, 2


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


class TokenOrder(NamedTuple):
    """A generated token task: ``tokens`` (N, length) int32, ``labels`` (N,) int32 (1 where
    :data:`TOKEN_A` comes before :data:`TOKEN_B`, else 0), ``positions`` (N, 2) int32 (the
    positions of A and of B: the decisive tokens) and ``lengths`` (N,) int32 (the number of tokens
    before the padding; ``tokens[i, lengths[i]:]`` is all :data:`PAD`).

    Example:
      >>> from jaxplain.data import TOKEN_A, token_order
      >>> d = token_order(4, length=8)
      >>> d.tokens.shape, bool((d.tokens[range(4), d.positions[:, 0]] == TOKEN_A).all())
      ((4, 8), True)

    References:
      Arras, Osman & Samek (2022), "CLEVR-XAI: A benchmark dataset for the ground truth
      evaluation of neural network explanations", Information Fusion (explanations checked
      against known evidence).
    """

    tokens: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    lengths: np.ndarray


def token_order(
    n: int, *, length: int = 12, vocab: int = 16, min_length: int | None = None, seed: int = 0
) -> TokenOrder:
    """Generates ``n`` token sequences whose label says whether token A comes before token B.

    Each sequence has ``lengths[i]`` tokens, drawn uniformly from ``[min_length, length]``, then
    :data:`PAD` (id 0) up to ``length``. Among its tokens, :data:`TOKEN_A` (id 1) and
    :data:`TOKEN_B` (id 2) appear exactly once each, at two distinct positions drawn uniformly;
    every other token is a filler drawn uniformly from the ids ``3 .. vocab - 1``. The label is 1
    iff A comes before B; the labels are balanced (alternating before the shuffle). Only the two
    decisive tokens and their order matter, so a model that solves the task must compare
    positions (a bag of tokens cannot), and an attribution should sit on ``positions``. The
    first of the two alone gives the label (if it is A, then A comes before B), and a trained
    Transformer decides from it: its most relevant token is ``positions.min(axis=1)``.

    Args:
      n: number of sequences (``>= 1``).
      length: the padded length of every sequence (``>= 2``).
      vocab: number of token ids (``>= 4``: PAD, A, B and at least one filler).
      min_length: the shortest sequence before padding, ``2 <= min_length <= length``; ``None``
        (the default) means ``length``: no padding.
      seed: seed of the NumPy generator; the same seed gives the same data.

    Returns:
      A :class:`TokenOrder` tuple ``(tokens, labels, positions, lengths)``.

    Raises:
      ValueError: an argument is out of range (it is named, with its value).

    Example:
      >>> import numpy as np
      >>> from jaxplain.data import PAD, token_order
      >>> d = token_order(6, length=8, vocab=10, min_length=4, seed=1)
      >>> d.tokens.dtype.name, np.bincount(d.labels).tolist()
      ('int32', [3, 3])
      >>> a, b = d.positions.T
      >>> bool(np.array_equal(d.labels, a < b)), bool((d.tokens[0, d.lengths[0]:] == PAD).all())
      (True, True)

    References:
      A synthetic stand-in for text classification data (no download), with a known answer;
      checking attributions against known decisive inputs follows Arras, Osman & Samek (2022),
      "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of neural network
      explanations", Information Fusion, and Adebayo et al. (2018), "Sanity Checks for Saliency
      Maps", NeurIPS.
    """
    where = "jaxplain.data.token_order"
    for name, value, low in (("n", n, 1), ("length", length, 2), ("vocab", vocab, 4)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{where}: {name} must be an int >= {low}, got {value!r}.")
    if min_length is None:
        min_length = length
    if (isinstance(min_length, bool) or not isinstance(min_length, (int, np.integer))
            or not 2 <= min_length <= length):
        raise ValueError(
            f"{where}: min_length must be an int with 2 <= min_length <= length={length} (or "
            f"None: no padding), got {min_length!r}."
        )
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.int32)
    lengths = rng.integers(min_length, length + 1, n)
    # Two distinct positions below each length: the first uniform, the second uniform among the rest.
    first = np.floor(rng.uniform(size=n) * lengths).astype(np.int64)
    second = np.floor(rng.uniform(size=n) * (lengths - 1)).astype(np.int64)
    second = second + (second >= first)
    lo, hi = np.minimum(first, second), np.maximum(first, second)
    pos_a = np.where(labels == 1, lo, hi)
    pos_b = np.where(labels == 1, hi, lo)
    tokens = rng.integers(3, vocab, (n, length))
    rows = np.arange(n)
    tokens[rows, pos_a] = TOKEN_A
    tokens[rows, pos_b] = TOKEN_B
    tokens[np.arange(length)[None, :] >= lengths[:, None]] = PAD
    order = rng.permutation(n)
    positions = np.stack([pos_a, pos_b], axis=1)
    return TokenOrder(
        tokens[order].astype(np.int32), labels[order], positions[order].astype(np.int32),
        lengths[order].astype(np.int32),
    )
