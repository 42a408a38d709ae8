"""Feature masks for the perturbation methods: a regular grid, and superpixels through
scikit-image (an optional dependency). Both return integer ids ``0 .. n-1`` shaped ``(H, W, 1)``,
so that every channel of a pixel belongs to the same feature."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxplain import _checks

__all__ = ["grid", "superpixels", "SUPERPIXELS"]

SUPERPIXELS = ("slic", "felzenszwalb", "quickshift")


def grid(shape: tuple, cell: int | tuple) -> np.ndarray:
    """Square (or ``(ch, cw)``) cells over an ``(H, W)`` or ``(H, W, C)`` input, numbered row by
    row; the last row and column of cells are cut at the edge.

    Example:
      >>> import jaxplain as jx
      >>> jx.segmentation.grid((4, 6, 3), 3)[..., 0].tolist()
      [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1], [2, 2, 2, 3, 3, 3]]

    References:
      Zeiler & Fergus (2014), ECCV (occluding square regions); Kokhlikyan et al. (2020), Captum's
      ``feature_mask``.
    """
    where = "segmentation.grid"
    if not isinstance(shape, (tuple, list)) or len(shape) not in (2, 3):
        raise ValueError(f"jaxplain.{where}: shape must be (H, W) or (H, W, C), got {shape!r}.")
    ch, cw = (cell, cell) if isinstance(cell, int) else tuple(cell)
    ch = _checks.check_int(where, "cell", ch, minimum=1)
    cw = _checks.check_int(where, "cell", cw, minimum=1)
    h, w = shape[0], shape[1]
    rows, cols = np.arange(h) // ch, np.arange(w) // cw
    return (rows[:, None] * (cols.max() + 1) + cols[None, :])[..., None].astype(np.int32)


def superpixels(image: Any, method: str = "slic", **options: Any) -> np.ndarray:
    """Superpixels of an ``(H, W, 3)`` image with scikit-image (``slic``, ``felzenszwalb`` or
    ``quickshift``; ``options`` go to it, e.g. ``n_segments=50``), renumbered ``0 .. n-1``.

    Example:
      >>> import numpy as np, jaxplain as jx
      >>> img = np.zeros((8, 8, 3)); img[:, 4:] = 1.0
      >>> m = jx.segmentation.superpixels(img, "felzenszwalb", scale=1000, min_size=8, sigma=0)
      >>> m.shape, int(m.max()) + 1
      ((8, 8, 1), 2)

    References:
      Achanta et al. (2012), "SLIC Superpixels Compared to State-of-the-Art Superpixel Methods",
      TPAMI; Felzenszwalb & Huttenlocher (2004), IJCV; Vedaldi & Soatto (2008), ECCV (quick
      shift); Ribeiro et al. (2016), KDD (LIME explains images over superpixels).
    """
    where = "segmentation.superpixels"
    method = _checks.check_choice(where, "method", method, SUPERPIXELS)
    try:
        from skimage import segmentation
    except ImportError as e:
        raise ImportError(f"jaxplain.{where} needs scikit-image: pip install scikit-image "
                          f"(or use jaxplain.segmentation.grid).") from e
    img = np.asarray(image, np.float64)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"jaxplain.{where}: image must be (H, W, 3), got shape {img.shape}.")
    labels = getattr(segmentation, method)(img, **options)
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)[..., None].astype(np.int32)
