"""Plotting attributions: channel reduction, quantile clipping, smoothing, heat maps and galleries.

An image attribution has the shape of the image, ``(H, W, C)``; plotting one per channel tells
little. The usual recipe, followed here:

1. reduce the channels to one ``(H, W)`` map (:func:`reduce_channels`: ``abs_max``, ``abs_sum``,
   ``sum_abs``, signed ``sum`` or ``l2``);
2. clamp the map to its 1% / 99% quantiles so a few outliers do not take the whole colour scale
   (:func:`clip_quantiles`);
3. optionally smooth it with a Gaussian (:func:`smooth`);
4. draw it with a colour bar (:func:`heatmap`), on top of the image (:func:`overlay`), or for many
   images and methods at once (:func:`gallery`).

Token attributions of text models are drawn as words on coloured backgrounds: in a figure
(:func:`text_heatmap`) or as HTML (:func:`text_html`, and :func:`save_text_html` for a page of
several rows); ``(L, D)`` scores are reduced over the embedding axis (``reduce="sum"`` or
``"norm"``).

There is no single correct choice of reduction or clipping: they change what a map seems to say,
so the figures should say which were used. Every function accepts NumPy or JAX arrays, returns
NumPy arrays or Matplotlib objects, never calls ``plt.show()`` and works with the ``Agg`` backend.
Values must be finite; plot concrete arrays, outside ``jax.jit``.

Example:
  >>> import numpy as np
  >>> from jaxplain import plot
  >>> attr = np.zeros((4, 4, 3)); attr[1, 2] = [0.5, -2.0, 1.0]
  >>> m = plot.reduce_channels(attr, "abs_max")
  >>> m.shape, float(m[1, 2])
  ((4, 4), 2.0)

References:
  Simonyan, Vedaldi & Zisserman (2013), "Deep Inside Convolutional Networks: Visualising Image
  Classification Models and Saliency Maps", arXiv:1312.6034 (maximum of ``|gradient|`` over
  channels).
  Smilkov, Thorat, Kim, Viegas & Wattenberg (2017), "SmoothGrad: removing noise by adding noise",
  arXiv:1706.03825 (absolute values, clipping to the 99th percentile).
  Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim (2018), "Sanity Checks for Saliency Maps",
  NeurIPS (how visualisation choices change what a map appears to show).
"""

from __future__ import annotations

import os
import textwrap
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
import numpy as np
from scipy import ndimage

from jaxplain import _checks
from jaxplain._plot_text import TEXT_REDUCTIONS as TEXT_REDUCTIONS
from jaxplain._plot_text import save_text_html as save_text_html
from jaxplain._plot_text import text_heatmap as text_heatmap
from jaxplain._plot_text import text_html as text_html
from jaxplain._tsne.plot import scatter as scatter
from jaxplain._featurevis.plot import grid as grid

__all__ = [
    "REDUCTIONS",
    "reduce_channels",
    "clip_quantiles",
    "smooth",
    "normalize",
    "heatmap",
    "overlay",
    "gallery",
    "scatter",
    "grid",
    "TEXT_REDUCTIONS",
    "text_heatmap",
    "text_html",
    "save_text_html",
]

REDUCTIONS = ("abs_max", "abs_sum", "sum_abs", "sum", "l2")
"""The channel reductions of :func:`reduce_channels`; only ``"sum"`` keeps the sign."""

_SIGNED_CMAP = "bwr"
_UNSIGNED_CMAP = "inferno"
_CBAR = {"fraction": 0.046, "pad": 0.04}  # the lecture's colour bar: as tall as the image


# --------------------------------------------------------------------------- input checks


def _array(fn: str, name: str, value: Any) -> np.ndarray:
    """``value`` as a finite float64 NumPy array, or a TypeError/ValueError naming it."""
    where = f"plot.{fn}"
    a = np.asarray(_checks.check_array(where, name, value, expected="a NumPy or JAX array of real numbers",
                                 concrete=True))
    if a.size == 0:
        raise ValueError(f"jaxplain.plot.{fn}: {name} is empty (shape {a.shape}); nothing to plot.")
    a = a.astype(np.float64)
    _checks.check_finite(where, name, a)
    return a


def _check_bool(fn: str, name: str, value: Any) -> bool:
    return _checks.check_bool(f"plot.{fn}", name, value)


def _check_signed(fn: str, value: Any) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"jaxplain.plot.{fn}: signed must be None (decide from the map), True or False, got "
            f"{type(value).__name__} {value!r}."
        )
    return bool(value)


def _check_unit(fn: str, name: str, value: Any) -> float:
    value = _checks.check_float(f"plot.{fn}", name, value, minimum=0.0)
    if value > 1.0:
        raise ValueError(f"jaxplain.plot.{fn}: {name} must be in [0, 1], got {value}.")
    return value


def _check_quantiles(fn: str, low: Any, high: Any) -> tuple[float, float]:
    low = _check_unit(fn, "low", low)
    high = _check_unit(fn, "high", high)
    if not low < high:
        raise ValueError(
            f"jaxplain.plot.{fn}: the quantiles need 0 <= low < high <= 1, got low={low}, "
            f"high={high}; e.g. low=0.01, high=0.99."
        )
    return low, high


def _check_clip(fn: str, clip: Any) -> tuple[float, float] | None:
    if clip is None:
        return None
    if isinstance(clip, (str, bytes)) or not hasattr(clip, "__len__") or len(clip) != 2:
        raise TypeError(
            f"jaxplain.plot.{fn}: clip must be None or a pair of quantiles (low, high), got "
            f"{type(clip).__name__} {clip!r}; e.g. clip=(0.01, 0.99)."
        )
    return _check_quantiles(fn, clip[0], clip[1])


# --------------------------------------------------------------------------- array recipes


def reduce_channels(attr: Any, how: str = "abs_max", *, axis: int = -1) -> np.ndarray:
    """Reduces the channels of an image attribution to one map per image.

    With ``a`` the attribution and ``c`` the channel index:

    * ``"abs_max"``: ``max_c |a_c|``, the saliency map of Simonyan et al. (default);
    * ``"abs_sum"``: ``sum_c |a_c|``;
    * ``"sum_abs"``: ``|sum_c a_c|`` (channels of opposite sign cancel before the absolute value);
    * ``"sum"``: ``sum_c a_c``, the only signed reduction (for contribution methods such as
      gradient x input or integrated gradients, whose channel sum still adds up to ``f(x) - f(b)``);
    * ``"l2"``: ``sqrt(sum_c a_c^2)``.

    A 2-D input is taken as an already reduced ``(H, W)`` map and returned unchanged (as float64).

    Args:
      attr: one attribution ``(H, W, C)``, a batch ``(N, H, W, C)``, or a map ``(H, W)``; NumPy or
        JAX, finite.
      how: the reduction, one of :data:`REDUCTIONS`.
      axis: the channel axis (``-1`` for NHWC; e.g. ``0`` for one CHW image, ``1`` for NCHW).

    Returns:
      A float64 NumPy array without the channel axis: ``(H, W)`` or ``(N, H, W)``.

    Example:
      >>> import numpy as np
      >>> from jaxplain.plot import reduce_channels
      >>> a = np.array([[[1.0, -3.0]], [[2.0, 2.0]]])  # H=2, W=1, C=2
      >>> [reduce_channels(a, how)[:, 0].tolist() for how in ("abs_max", "sum_abs", "sum")]
      [[3.0, 2.0], [2.0, 4.0], [-2.0, 4.0]]

    References:
      Simonyan, Vedaldi & Zisserman (2013), "Deep Inside Convolutional Networks: Visualising Image
      Classification Models and Saliency Maps", arXiv:1312.6034 (``abs_max``).
      Smilkov, Thorat, Kim, Viegas & Wattenberg (2017), "SmoothGrad: removing noise by adding
      noise", arXiv:1706.03825 (``abs_sum``).
    """
    how = _checks.check_choice("plot.reduce_channels", "how", how, REDUCTIONS)
    a = _array("reduce_channels", "attr", attr)
    if a.ndim == 2:
        return a
    if a.ndim not in (3, 4):
        raise ValueError(
            f"jaxplain.plot.reduce_channels: attr must be a map (H, W), one attribution "
            f"(H, W, C) or a batch (N, H, W, C), got shape {a.shape} (ndim {a.ndim})."
        )
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(
            f"jaxplain.plot.reduce_channels: axis must be an int, got {type(axis).__name__} "
            f"{axis!r}."
        )
    if not -a.ndim <= axis < a.ndim:
        raise ValueError(
            f"jaxplain.plot.reduce_channels: axis {axis} is out of range for attr of shape "
            f"{a.shape}; use -1 for channels-last (NHWC) arrays."
        )
    if how == "abs_max":
        return np.max(np.abs(a), axis=axis)
    if how == "abs_sum":
        return np.sum(np.abs(a), axis=axis)
    if how == "sum_abs":
        return np.abs(np.sum(a, axis=axis))
    if how == "sum":
        return np.sum(a, axis=axis)
    return np.sqrt(np.sum(a * a, axis=axis))


def clip_quantiles(
    a: Any, low: float = 0.01, high: float = 0.99, *, symmetric: bool = False
) -> np.ndarray:
    """Clamps a map to its ``low`` and ``high`` quantiles, so outliers do not set the colour scale.

    The quantiles are taken over all values (NumPy's default linear interpolation, the same as
    ``torch.quantile`` in the lecture's recipe). With ``symmetric=True``, for signed maps, ``|a|``
    is clamped to its ``high`` quantile ``m`` keeping the sign, i.e. ``a`` to ``[-m, m]``, so zero
    stays the centre of a diverging colour map (``low`` is then unused).

    Args:
      a: the values, any shape; NumPy or JAX, finite.
      low: the lower quantile, ``0 <= low < high``.
      high: the upper quantile, ``high <= 1``.
      symmetric: clamp ``|a|`` to its ``high`` quantile instead, keeping the sign.

    Returns:
      A float64 NumPy array shaped like ``a``.

    Example:
      >>> import numpy as np
      >>> from jaxplain.plot import clip_quantiles
      >>> clip_quantiles(np.arange(11.0), 0.1, 0.9).tolist()
      [1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 9.0]
      >>> clip_quantiles(np.array([-100.0, -1.0, 0.0, 1.0, 2.0]), high=0.75, symmetric=True).tolist()
      [-2.0, -1.0, 0.0, 1.0, 2.0]

    References:
      Smilkov, Thorat, Kim, Viegas & Wattenberg (2017), "SmoothGrad: removing noise by adding
      noise", arXiv:1706.03825 (clipping to the 99th percentile).
    """
    low, high = _check_quantiles("clip_quantiles", low, high)
    symmetric = _check_bool("clip_quantiles", "symmetric", symmetric)
    a = _array("clip_quantiles", "a", a)
    if symmetric:
        m = np.quantile(np.abs(a), high)
        return np.clip(a, -m, m)
    lo, hi = np.quantile(a, [low, high])
    return np.clip(a, lo, hi)


def smooth(a: Any, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a 2-D map: each pixel becomes a Gaussian-weighted mean of its
    neighbours (``scipy.ndimage.gaussian_filter``, edges reflected, so a constant map stays
    constant).

    Args:
      a: a map ``(H, W)``; reduce the channels first (:func:`reduce_channels`).
      sigma: the standard deviation of the Gaussian in pixels, ``>= 0``; wider is smoother, ``0``
        returns the map unchanged.

    Returns:
      A float64 NumPy array ``(H, W)``.

    Example:
      >>> import numpy as np
      >>> from jaxplain.plot import smooth
      >>> m = np.zeros((5, 5)); m[2, 2] = 1.0
      >>> s = smooth(m, 1.0)
      >>> round(float(s.sum()), 6), bool(s[2, 2] < 1.0), bool(s[2, 1] > 0)
      (1.0, True, True)

    References:
      xai-lecture-10-cnns (the seed lecture): Gaussian smoothing of gradient maps before overlaying; Smilkov et al. (2017), "SmoothGrad", arXiv:1706.03825, on visual noise in gradient maps.
    """
    sigma = _checks.check_float("plot.smooth", "sigma", sigma, minimum=0.0)
    a = _array("smooth", "a", a)
    if a.ndim != 2:
        raise ValueError(
            f"jaxplain.plot.smooth: a must be a 2-D map (H, W), got shape {a.shape}; reduce the "
            f"channels first, e.g. smooth(reduce_channels(attr), sigma)."
        )
    if sigma == 0.0:
        return a
    return ndimage.gaussian_filter(a, sigma=sigma)


def normalize(a: Any, *, signed: bool) -> np.ndarray:
    """Scales a map for display: signed into ``[-1, 1]``, unsigned into ``[0, 1]``.

    * ``signed=True``: ``a / max|a|``; zero stays zero and the larger side reaches 1 or -1.
    * ``signed=False``: ``(a - min) / (max - min)``.

    A map without contrast (all zero, or constant when unsigned) becomes all zeros, never NaN.

    Args:
      a: the values, any shape; NumPy or JAX, finite.
      signed: which of the two scalings.

    Returns:
      A float64 NumPy array shaped like ``a``.

    Example:
      >>> import numpy as np
      >>> from jaxplain.plot import normalize
      >>> normalize(np.array([-2.0, 1.0, 4.0]), signed=True).tolist()
      [-0.5, 0.25, 1.0]
      >>> normalize(np.array([-2.0, 1.0, 4.0]), signed=False).tolist()
      [0.0, 0.5, 1.0]
      >>> normalize(np.zeros(3), signed=True).tolist()
      [0.0, 0.0, 0.0]

    References:
      Montavon, Samek & Mueller (2018), "Methods for interpreting and understanding deep neural networks", Digital Signal Processing 73 (heat-map scaling conventions).
    """
    signed = _check_bool("normalize", "signed", signed)
    a = _array("normalize", "a", a)
    if signed:
        m = float(np.max(np.abs(a)))
        return a / m if m > 0 else np.zeros_like(a)
    lo, hi = float(np.min(a)), float(np.max(a))
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


# --------------------------------------------------------------------------- drawing


def _prepare_map(fn, attr, reduce, signed, clip, smooth_sigma):
    """Runs the recipe; returns the final map and whether it is drawn signed."""
    signed = _check_signed(fn, signed)
    clip = _check_clip(fn, clip)
    sigma = _checks.check_float(f"plot.{fn}", "smooth_sigma", smooth_sigma, minimum=0.0)
    keeps_sign = reduce in (None, "sum")
    if reduce is None:
        a = _array(fn, "attr", attr)
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim != 2:
            raise ValueError(
                f"jaxplain.plot.{fn}: with reduce=None attr must be a map (H, W) or have one "
                f"channel, got shape {a.shape}; pass reduce='abs_max' (or another of "
                f"{', '.join(REDUCTIONS)}) to reduce the channels."
            )
    else:
        reduce = _checks.check_choice(f"plot.{fn}", "reduce", reduce, REDUCTIONS)
        a = _array(fn, "attr", attr)
        if a.ndim != 2 and a.ndim != 3:
            raise ValueError(
                f"jaxplain.plot.{fn}: attr must be one attribution (H, W, C) or a map (H, W), got "
                f"shape {a.shape}; for a batch plot attr[i], or use gallery()."
            )
        keeps_sign = keeps_sign or a.ndim == 2  # a map passes reduce_channels unchanged
        a = reduce_channels(a, reduce)
    if signed is None:
        signed = keeps_sign and bool(a.min() < 0 < a.max())
    if clip is not None:
        a = clip_quantiles(a, *clip, symmetric=signed)
    a = smooth(a, sigma)
    return a, signed


def _draw_map(ax, m, signed, cmap, alpha, colorbar, title):
    if signed:
        lim = float(np.max(np.abs(m)))
        lim = lim if lim > 0 else 1.0  # an all-zero map: any symmetric range shows it as zero
        vmin, vmax = -lim, lim
        cmap = _SIGNED_CMAP if cmap is None else cmap
    else:
        vmin, vmax = float(m.min()), float(m.max())
        cmap = _UNSIGNED_CMAP if cmap is None else cmap
    im = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha)
    ax.axis("off")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, **_CBAR)
    if title is not None:
        ax.set_title(str(title))
    return im


def _image(fn: str, name: str, image: Any) -> tuple[np.ndarray, bool]:
    """The image as float64, and whether it held integers (read as 8-bit pixels ``0..255``)."""
    img = _array(fn, name, image)
    return img, bool(np.issubdtype(np.asarray(image).dtype, np.integer))


def _display_image(fn: str, name: str, img: np.ndarray, integer: bool):
    """An image ready for ``imshow``: values in [0, 1] and the colour map (gray for one channel)."""
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] in (3, 4))):
        raise ValueError(
            f"jaxplain.plot.{fn}: {name} must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) "
            f"(channels last), got shape {img.shape}; transpose a CHW image with "
            f"np.moveaxis(image, 0, -1)."
        )
    lo, hi = float(img.min()), float(img.max())
    if integer and lo >= 0 and hi <= 255:
        img = img / 255.0  # 8-bit pixel values
    elif lo < 0 or hi > 1:
        img = (img - lo) / (hi - lo)  # e.g. a standardised image: min-max for display
    return img, ("gray" if img.ndim == 2 else None)


def _check_ax(fn: str, ax: Any):
    if ax is None:
        return plt.gca()
    if not isinstance(ax, Axes):
        raise TypeError(
            f"jaxplain.plot.{fn}: ax must be a matplotlib Axes or None, got "
            f"{type(ax).__name__} {ax!r:.80}. The recipe's options are keyword-only, e.g. "
            f"{fn}(..., reduce='sum')."
        )
    return ax


def _draw_overlay(fn, ax, image, attr, *, alpha, reduce, signed, clip, smooth_sigma, cmap,
                  colorbar, title, image_name="image"):
    alpha = _check_unit(fn, "alpha", alpha)
    img, img_cmap = _display_image(fn, image_name, *image)
    m, signed = _prepare_map(fn, attr, reduce, signed, clip, smooth_sigma)
    if m.shape != img.shape[:2]:
        raise ValueError(
            f"jaxplain.plot.{fn}: the attribution map is {m.shape} but the image is "
            f"{img.shape[:2]} (H, W); pass the attribution of this image."
        )
    ax.imshow(img, cmap=img_cmap, vmin=0.0, vmax=1.0)
    _draw_map(ax, m, signed, cmap, alpha, colorbar, title)
    return ax


def heatmap(
    attr: Any,
    ax: Any = None,
    *,
    reduce: str | None = "abs_max",
    signed: bool | None = None,
    clip: tuple[float, float] | None = (0.01, 0.99),
    smooth_sigma: float = 0.0,
    cmap: Any = None,
    colorbar: bool = True,
    title: str | None = None,
):
    """Draws one attribution as a heat map: reduce channels, clip quantiles, smooth, colour.

    Signed maps use a diverging colour map with limits ``(-m, m)``, ``m = max|map|``, so white is
    zero, red positive and blue negative; unsigned maps use ``"inferno"`` from the map's minimum to
    its maximum. Signed maps are clipped symmetrically (``|map|`` to its ``clip[1]`` quantile, see
    :func:`clip_quantiles`), unsigned ones to ``[clip[0], clip[1]]`` quantiles.

    Args:
      attr: one attribution ``(H, W, C)`` or a map ``(H, W)``; NumPy or JAX.
      ax: the Matplotlib Axes to draw on (default: the current Axes, ``plt.gca()``).
      reduce: the channel reduction (one of :data:`REDUCTIONS`, see :func:`reduce_channels`), or
        ``None`` for a map that is already ``(H, W)`` (or ``(H, W, 1)``).
      signed: draw signed (diverging, symmetric limits) or unsigned; ``None`` decides: signed when
        the sign survived the reduction (``reduce`` is ``"sum"`` or ``None``, or ``attr`` is
        already a 2-D map) and the map has both signs.
      clip: the quantiles ``(low, high)`` to clamp to, or ``None`` for no clipping.
      smooth_sigma: the Gaussian smoothing width in pixels (``0``: none), applied after clipping.
      cmap: a Matplotlib colour map (default ``"bwr"`` signed, ``"inferno"`` unsigned).
      colorbar: add a colour bar next to the map.
      title: the Axes title.

    Returns:
      The ``matplotlib.image.AxesImage``; ``im.get_clim()`` are the colour limits.

    Example:
      >>> import matplotlib.pyplot as plt, numpy as np
      >>> from jaxplain.plot import heatmap
      >>> fig, ax = plt.subplots()
      >>> attr = np.zeros((8, 8, 3)); attr[2, 3] = [1.0, 0.5, 0.5]; attr[5, 5] = [-4.0, 0.0, 0.0]
      >>> im = heatmap(attr, ax, reduce="sum", clip=None)
      >>> type(im).__name__, im.get_clim(), im.get_cmap().name
      ('AxesImage', (-4.0, 4.0), 'bwr')
      >>> plt.close(fig)

    References:
      Simonyan, Vedaldi & Zisserman (2013), "Deep Inside Convolutional Networks: Visualising Image
      Classification Models and Saliency Maps", arXiv:1312.6034.
      Smilkov, Thorat, Kim, Viegas & Wattenberg (2017), "SmoothGrad: removing noise by adding
      noise", arXiv:1706.03825.
    """
    colorbar = _check_bool("heatmap", "colorbar", colorbar)
    m, signed = _prepare_map("heatmap", attr, reduce, signed, clip, smooth_sigma)
    ax = _check_ax("heatmap", ax)
    return _draw_map(ax, m, signed, cmap, None, colorbar, title)


def overlay(
    image: Any,
    attr: Any,
    ax: Any = None,
    *,
    alpha: float = 0.6,
    reduce: str | None = "abs_max",
    signed: bool | None = None,
    clip: tuple[float, float] | None = (0.01, 0.99),
    smooth_sigma: float = 0.0,
    cmap: Any = None,
    colorbar: bool = True,
    title: str | None = None,
):
    """Draws an image and its attribution's heat map on top of it, with transparency ``alpha``.

    The image is drawn first: grayscale if it has one channel; floats in ``[0, 1]`` as they are,
    integers in ``0..255`` divided by 255, anything else (e.g. a standardised image) min-max scaled
    for display. The heat map follows the recipe of :func:`heatmap`, whose options this takes.

    Args:
      image: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``; NumPy or JAX.
      attr: its attribution ``(H, W, C)`` or a map ``(H, W)`` of the same height and width.
      ax: the Matplotlib Axes to draw on (default: the current Axes, ``plt.gca()``).
      alpha: the opacity of the heat map, in ``[0, 1]``.
      reduce, signed, clip, smooth_sigma, cmap, colorbar, title: as in :func:`heatmap`.

    Returns:
      The Axes, holding two images (``ax.images``): the picture and the heat map.

    Example:
      >>> import matplotlib.pyplot as plt, numpy as np
      >>> from jaxplain.plot import overlay
      >>> fig, ax = plt.subplots()
      >>> image = np.full((8, 8, 3), 0.5); attr = np.zeros((8, 8, 3)); attr[4, 4] = 1.0
      >>> ax = overlay(image, attr, ax, alpha=0.5, smooth_sigma=1.0)
      >>> len(ax.images), ax.images[1].get_alpha()
      (2, 0.5)
      >>> plt.close(fig)

    References:
      Smilkov, Thorat, Kim, Viegas & Wattenberg (2017), "SmoothGrad: removing noise by adding
      noise", arXiv:1706.03825.
    """
    colorbar = _check_bool("overlay", "colorbar", colorbar)
    image = _image("overlay", "image", image)
    ax = _check_ax("overlay", ax)
    return _draw_overlay(
        "overlay", ax, image, attr, alpha=alpha, reduce=reduce, signed=signed, clip=clip,
        smooth_sigma=smooth_sigma, cmap=cmap, colorbar=colorbar, title=title,
    )


def gallery(
    images: Any,
    attributions: Mapping[str, Any],
    *,
    labels: Sequence[Any] | None = None,
    path: str | os.PathLike | None = None,
    overlay: bool = False,
    signed: bool | None = None,
    reduce: str | None = "abs_max",
    dpi: int = 100,
    max_cols_title_len: int = 14,
    clip: tuple[float, float] | None = (0.01, 0.99),
    smooth_sigma: float = 0.0,
    cmap: Any = None,
    colorbar: bool = False,
    alpha: float = 0.6,
    cell_size: float = 1.6,
):
    """Draws a grid of attributions: one row per image, one column per method.

    The first column shows the image (titled with its label when ``labels`` is given, otherwise
    ``"input"`` on the first row); then each method has a column titled with its name (wrapped at
    ``max_cols_title_len`` characters). Every cell has its own colour scale, since magnitudes differ
    between methods and between images; each cell follows the recipe of :func:`heatmap`.

    Args:
      images: ``(N, H, W, C)`` with ``C`` in 1, 3, 4, or ``(N, H, W)``; NumPy or JAX.
      attributions: ``{method name: array}`` with arrays ``(N, H, W, C)`` or already reduced
        ``(N, H, W)``, in column order.
      labels: ``N`` labels (e.g. class names) shown above the images, or ``None``.
      path: if given, the figure is saved there (PNG unless the suffix names another format
        Matplotlib writes), at ``dpi``, without cropping: the PNG is the figure size times ``dpi``.
      overlay: draw each map over its image (:func:`overlay`) instead of alone.
      signed: as in :func:`heatmap` (``None``: decided for each cell).
      reduce: the channel reduction, as in :func:`heatmap` (``None`` for ``(N, H, W)`` maps).
      dpi: the figure's resolution in dots per inch.
      max_cols_title_len: column titles longer than this wrap onto further lines.
      clip, smooth_sigma, cmap: as in :func:`heatmap`, for every cell.
      colorbar: add a colour bar to every cell.
      alpha: the heat map opacity when ``overlay=True``.
      cell_size: the width and height of one cell in inches.

    Returns:
      The ``matplotlib.figure.Figure`` with ``N * (1 + len(attributions))`` image Axes (plus one
      per colour bar); close it with ``plt.close(fig)`` when done.

    Example:
      >>> import matplotlib.pyplot as plt, numpy as np
      >>> from jaxplain.plot import gallery
      >>> rng = np.random.default_rng(0)
      >>> images = rng.uniform(size=(2, 8, 8, 3))
      >>> attrs = {"gradient": rng.normal(size=(2, 8, 8, 3)), "saliency": rng.uniform(size=(2, 8, 8))}
      >>> fig = gallery(images, attrs, labels=["cat", "dog"], dpi=50)
      >>> type(fig).__name__, len(fig.axes), [ax.get_title() for ax in fig.axes[:3]]
      ('Figure', 6, ['cat', 'gradient', 'saliency'])
      >>> plt.close(fig)

    References:
      Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim (2018), "Sanity Checks for Saliency Maps",
      NeurIPS (side-by-side method galleries, and how visualisation choices change them).
    """
    fn = "gallery"
    overlay = _check_bool(fn, "overlay", overlay)
    colorbar = _check_bool(fn, "colorbar", colorbar)
    dpi = _checks.check_int(f"plot.{fn}", "dpi", dpi, minimum=1)
    width = _checks.check_int(f"plot.{fn}", "max_cols_title_len", max_cols_title_len, minimum=1)
    cell = _checks.check_float(f"plot.{fn}", "cell_size", cell_size, minimum=0.0)
    if cell == 0.0:
        raise ValueError(f"jaxplain.plot.{fn}: cell_size must be > 0 inches, got {cell_size!r}.")
    imgs, integer = _image(fn, "images", images)
    if imgs.ndim == 3:
        imgs = imgs[..., None]
    if imgs.ndim != 4 or imgs.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"jaxplain.plot.{fn}: images must be a batch (N, H, W, C) with C in (1, 3, 4), or "
            f"(N, H, W), got shape {np.shape(images)}; for one image pass image[None]."
        )
    n, h, w = imgs.shape[:3]
    if not isinstance(attributions, Mapping):
        raise TypeError(
            f"jaxplain.plot.{fn}: attributions must be a dict {{method name: array}}, got "
            f"{type(attributions).__name__}; e.g. {{'gradient': attr}}."
        )
    if not attributions:
        raise ValueError(f"jaxplain.plot.{fn}: attributions is an empty dict; pass at least one method.")
    attrs = {}
    for name, value in attributions.items():
        a = _array(fn, f"attributions[{name!r}]", value)
        if a.ndim not in (3, 4) or a.shape[:3] != (n, h, w):
            raise ValueError(
                f"jaxplain.plot.{fn}: attributions[{name!r}] has shape {a.shape}, but the images "
                f"are {imgs.shape}: expected ({n}, {h}, {w}, C) or ({n}, {h}, {w})."
            )
        attrs[str(name)] = a
    if labels is not None:
        if isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
            raise TypeError(
                f"jaxplain.plot.{fn}: labels must be a sequence of {n} labels or None, got "
                f"{type(labels).__name__} {labels!r:.80}."
            )
        labels = [str(x) for x in labels]
        if len(labels) != n:
            raise ValueError(
                f"jaxplain.plot.{fn}: got {len(labels)} labels for {n} images; pass one per image."
            )

    titles = ["\n".join(textwrap.wrap(k, width)) or k for k in attrs]
    lines = max(t.count("\n") + 1 for t in titles)
    ncols = 1 + len(attrs)
    figsize = (cell * ncols * (1.3 if colorbar else 1.0), cell * n + 0.2 * lines + 0.1)
    fig, axes = plt.subplots(
        n, ncols, figsize=figsize, dpi=dpi, squeeze=False, layout="constrained"
    )
    for i in range(n):
        img, img_cmap = _display_image(fn, f"images[{i}]", imgs[i], integer)
        ax = axes[i, 0]
        ax.imshow(img, cmap=img_cmap, vmin=0.0, vmax=1.0)
        ax.axis("off")
        if labels is not None:
            ax.set_title(labels[i], fontsize="medium")
        elif i == 0:
            ax.set_title("input", fontsize="medium")
        for j, (name, a) in enumerate(attrs.items(), start=1):
            ax = axes[i, j]
            title = titles[j - 1] if i == 0 else None
            if overlay:
                _draw_overlay(
                    fn, ax, (imgs[i], integer), a[i], alpha=alpha, reduce=reduce, signed=signed, clip=clip,
                    smooth_sigma=smooth_sigma, cmap=cmap, colorbar=colorbar, title=None,
                    image_name=f"images[{i}]",
                )
            else:
                m, sgn = _prepare_map(fn, a[i], reduce, signed, clip, smooth_sigma)
                _draw_map(ax, m, sgn, cmap, None, colorbar, None)
            if title is not None:
                ax.set_title(title, fontsize="medium")
    if path is not None:
        fig.savefig(os.fspath(path), dpi=dpi)
    return fig
