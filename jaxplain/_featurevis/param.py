"""Image parametrizations for activation maximization: what the optimizer moves, and how it becomes
an image in the valid range.

``pixel()`` optimizes the pixels; ``fourier()`` optimizes a spectrum scaled by 1/frequency, so
that every frequency is about as easy to move and the images come out with less high-frequency
noise (Olah et al. 2017). With ``decorrelate=True`` the three channels are Lucid's decorrelated
colour space (the square root of ImageNet's colour correlation), then ``sigmoid`` (or a clip)
maps to ``[0, 1]`` and ``value_range`` to the model's input range.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain import _checks

__all__ = ["Param", "pixel", "fourier", "rfft2d_freqs", "fourier_scale", "COLOR_CORRELATION_SVD_SQRT"]

#: Lucid's colour-correlation square root (``lucid.optvis.param.color``), ImageNet statistics.
COLOR_CORRELATION_SVD_SQRT = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_MAX_NORM = float(np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0)))
_COLOR = COLOR_CORRELATION_SVD_SQRT / _MAX_NORM

VALID = ("sigmoid", "clip")


class Param(NamedTuple):
    """A parametrization: ``init(key, shape) -> params``, ``image(params, shape) -> (H, W, C)``
    image, and ``invert(image) -> params`` (``None`` where there is none) to start from an image.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> p = jx.featurevis.pixel(decorrelate=False)
      >>> x = jnp.full((2, 2, 3), 0.25)
      >>> bool(jnp.allclose(p.image(p.invert(x), x.shape), x, atol=1e-5))
      True

    References:
      Mordvintsev et al. (2018), "Differentiable Image Parameterizations", Distill.
    """

    name: str
    init: Callable
    image: Callable
    invert: Callable | None


def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """The spatial frequency of each entry of a real 2-D FFT of an ``h x w`` image (Lucid's
    ``rfft2d_freqs``: ``sqrt(fx^2 + fy^2)``, with one extra column for odd ``w``).

    Example:
      >>> from jaxplain.featurevis import rfft2d_freqs
      >>> rfft2d_freqs(4, 4).shape, float(rfft2d_freqs(4, 4)[0, 2])
      ((4, 3), 0.5)

    References:
      Lucid, ``lucid/optvis/param/spatial.py``; Olah, Mordvintsev & Schubert (2017).
    """
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + (2 if w % 2 == 1 else 1)]
    return np.sqrt(fx * fx + fy * fy)


def fourier_scale(h: int, w: int, decay_power: float = 1.0) -> np.ndarray:
    """Lucid's spectrum scale: ``1 / max(freq, 1 / max(h, w)) ** decay_power * sqrt(h * w)``.

    Example:
      >>> from jaxplain.featurevis import fourier_scale
      >>> float(fourier_scale(4, 4)[0, 0])  # the DC entry: 1 / (1/4) * 4
      16.0

    References:
      Lucid, ``lucid/optvis/param/spatial.py`` (``fft_image``); Olah, Mordvintsev & Schubert
      (2017), "Feature Visualization", Distill.
    """
    scale = 1.0 / np.maximum(rfft2d_freqs(h, w), 1.0 / max(w, h)) ** decay_power
    return (scale * np.sqrt(w * h)).astype(np.float32)


def _check_common(where, decorrelate, valid, value_range):
    decorrelate = _checks.check_bool(where, "decorrelate", decorrelate)
    valid = _checks.check_choice(where, "valid", valid, VALID)
    if (not isinstance(value_range, (tuple, list)) or len(value_range) != 2
            or not float(value_range[0]) < float(value_range[1])):
        raise ValueError(f"jaxplain.{where}: value_range must be (low, high) with low < high, got "
                         f"{value_range!r}.")
    return decorrelate, valid, (float(value_range[0]), float(value_range[1]))


def _to_valid(where: str, decorrelate: bool, valid: str, value_range: tuple) -> tuple[Callable, Callable]:
    """``(forward, inverse)`` between the optimized space and images in ``value_range``."""
    low, high = value_range

    def forward(t):
        if decorrelate:
            if t.shape[-1] != 3:
                raise ValueError(f"jaxplain.{where}: decorrelate=True needs 3 colour channels, the "
                                 f"image has {t.shape[-1]}; pass decorrelate=False.")
            t = t @ jnp.asarray(_COLOR.T, t.dtype)
        v = jax.nn.sigmoid(t) if valid == "sigmoid" else jnp.clip(t + 0.5, 0.0, 1.0)
        return low + (high - low) * v

    def inverse(img):
        v = jnp.clip((jnp.asarray(img) - low) / (high - low), 1e-4, 1 - 1e-4)
        t = jnp.log(v) - jnp.log1p(-v) if valid == "sigmoid" else v - 0.5
        if decorrelate:
            t = t @ jnp.asarray(np.linalg.inv(_COLOR.T), t.dtype)
        return t

    return forward, inverse


def pixel(*, sd: float = 0.01, decorrelate: bool = True, valid: str = "sigmoid",
          value_range: tuple = (0.0, 1.0)) -> Param:
    """Pixels as the parameters, started at ``N(0, sd^2)`` (grey after the sigmoid).

    Args:
      sd: the standard deviation of the initial parameters.
      decorrelate: optimize in Lucid's decorrelated colour space (3 channels).
      valid: ``"sigmoid"`` or ``"clip"``: how parameters map to ``[0, 1]``.
      value_range: the model's input range the image is scaled to.

    Returns:
      A :class:`Param`; it can start from an image (``init=`` of
      :func:`jaxplain.activation_maximization`).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain.featurevis import pixel
      >>> p = pixel()
      >>> img = p.image(p.init(jax.random.key(0), (8, 8, 3)), (8, 8, 3))
      >>> img.shape, bool(jnp.all((img > 0.45) & (img < 0.55)))
      ((8, 8, 3), True)

    References:
      Olah, Mordvintsev & Schubert (2017), "Feature Visualization", Distill; Lucid's
      ``pixel_image`` and ``to_valid_rgb``.
    """
    where = "featurevis.pixel"
    sd = _checks.check_float(where, "sd", sd)
    forward, inverse = _to_valid(where, *_check_common(where, decorrelate, valid, value_range))

    def init(key, shape):
        return sd * jax.random.normal(key, tuple(shape), jnp.float32)

    return Param("pixel", init, lambda params, shape: forward(params), inverse)


def fourier(*, sd: float = 0.01, decay_power: float = 1.0, decorrelate: bool = True,
            valid: str = "sigmoid", value_range: tuple = (0.0, 1.0)) -> Param:
    """A spectrum as the parameters, scaled by :func:`fourier_scale` (1/frequency), then an inverse
    real FFT divided by 4, as Lucid's ``fft_image``.

    Args:
      sd: the standard deviation of the initial spectrum (real and imaginary parts).
      decay_power: the power of the 1/frequency scaling.
      decorrelate, valid, value_range: as in :func:`pixel`.

    Returns:
      A :class:`Param`.

    Example:
      >>> import jax
      >>> from jaxplain.featurevis import fourier
      >>> p = fourier()
      >>> p.image(p.init(jax.random.key(0), (9, 7, 3)), (9, 7, 3)).shape
      (9, 7, 3)

    References:
      Olah, Mordvintsev & Schubert (2017), "Feature Visualization", Distill; Mordvintsev et al.
      (2018), "Differentiable Image Parameterizations", Distill.
    """
    where = "featurevis.fourier"
    sd = _checks.check_float(where, "sd", sd)
    decay_power = _checks.check_float(where, "decay_power", decay_power)
    forward, _ = _to_valid(where, *_check_common(where, decorrelate, valid, value_range))

    def init(key, shape):
        h, w, c = shape
        return sd * jax.random.normal(key, (2, c) + rfft2d_freqs(h, w).shape, jnp.float32)

    def image(params, shape):
        return forward(_spectrum_image(params, shape[0], shape[1], decay_power))

    return Param("fourier", init, image, None)


def _spectrum_image(params, h: int, w: int, decay_power: float):
    wf = params.shape[-1]
    scale = jnp.asarray(fourier_scale(h, w, decay_power))
    spectrum = (params[0] + 1j * params[1]) * scale
    n = 2 * (wf - 1)  # Lucid's irfft2d length: w, or w + 1 for odd w (then cropped)
    img = jnp.fft.irfft2(spectrum, s=(h, n), axes=(-2, -1))[:, :h, :w]
    return jnp.moveaxis(img, 0, -1) / 4.0
