"""A grid of images: rendered units, dataset examples, crops, filters or feature maps."""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np

from jaxplain import _checks

__all__ = ["grid"]


def grid(images: Any, *, titles: Sequence[Any] | None = None, cols: int | None = None,
         path: str | os.PathLike | None = None, cell_size: float = 1.2, cmap: str = "viridis",
         dpi: int = 100):
    """Draws images in a grid: ``(N, H, W, 3)`` colour images in ``[0, 1]`` as they are, ``(N, H, W)``
    (or one channel) maps each scaled to its own range with ``cmap``.

    Args:
      images: ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)``, e.g. the output of
        :func:`jaxplain.activation_maximization` for many units, :func:`jaxplain.featurevis.filters`
        or :func:`jaxplain.featurevis.feature_maps`.
      titles: one title per image (e.g. the unit indices), or None.
      cols: columns (default: about the square root of N).
      path: if given, the figure is saved there.
      cell_size: inches per image.
      cmap: the colour map of one-channel maps.
      dpi: resolution.

    Returns:
      The matplotlib figure.

    Example:
      >>> import numpy as np
      >>> from jaxplain import plot
      >>> fig = plot.grid(np.random.default_rng(0).uniform(size=(6, 8, 8, 3)), titles=range(6))
      >>> len(fig.axes)
      6

    References:
      Olah, Mordvintsev & Schubert (2017), "Feature Visualization", Distill (grids of rendered
      units); Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks", ECCV.
    """
    import matplotlib.pyplot as plt

    where = "plot.grid"
    imgs = np.asarray(images, np.float64)
    if imgs.ndim == 4 and imgs.shape[-1] == 1:
        imgs = imgs[..., 0]
    if imgs.ndim not in (3, 4) or (imgs.ndim == 4 and imgs.shape[-1] != 3) or len(imgs) == 0:
        raise ValueError(f"jaxplain.{where}: images must be (N, H, W), (N, H, W, 1) or (N, H, W, 3) "
                         f"with N >= 1, got shape {np.shape(images)}.")
    if not np.isfinite(imgs).all():
        raise ValueError(f"jaxplain.{where}: images contain NaN or Inf.")
    n = len(imgs)
    if titles is not None:
        titles = [str(t) for t in titles]
        if len(titles) != n:
            raise ValueError(f"jaxplain.{where}: got {len(titles)} titles for {n} images.")
    cols = math.ceil(math.sqrt(n)) if cols is None else _checks.check_int(where, "cols", cols, minimum=1)
    rows = math.ceil(n / cols)
    cell = _checks.check_float(where, "cell_size", cell_size)
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols, cell * rows + 0.2 * (titles is not None) * rows),
                             dpi=_checks.check_int(where, "dpi", dpi, minimum=1), squeeze=False,
                             layout="constrained")
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            fig.delaxes(ax)
            continue
        if imgs.ndim == 4:
            ax.imshow(np.clip(imgs[k], 0.0, 1.0))
        else:
            ax.imshow(imgs[k], cmap=cmap)
        ax.axis("off")
        if titles is not None:
            ax.set_title(titles[k], fontsize="small")
    if path is not None:
        fig.savefig(os.fspath(path), dpi=dpi)
    return fig
