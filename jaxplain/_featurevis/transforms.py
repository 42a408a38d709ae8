"""Transformation robustness: random, keyed, jit-friendly changes of the image before the model sees
it, so that the optimized image works under small shifts, scales and rotations (and does not
exploit high-frequency patterns). Each transform maps ``(key, image (H, W, C)) -> image``;
:func:`compose` chains them; :func:`standard` is Lucid's ``standard_transforms``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain import _checks

__all__ = ["Transform", "pad", "jitter", "random_scale", "random_rotate", "compose", "standard"]


class Transform:
    """``fn(key, image) -> image`` for one ``(H, W, C)`` image, and its name; called as
    ``transform(key, image)`` (and ``jax.jit``-able like any function).

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> flip = jx.featurevis.Transform("flip", lambda key, x: x[:, ::-1])
      >>> jx.featurevis.compose(flip, flip)(jax.random.key(0), jnp.eye(2)[..., None])[..., 0].tolist()
      [[1.0, 0.0], [0.0, 1.0]]

    References:
      Olah, Mordvintsev & Schubert (2017), "Feature Visualization", Distill (transformation
      robustness).
    """

    __slots__ = ("name", "fn", "__weakref__")

    def __init__(self, name: str, fn: Callable):
        self.name, self.fn = name, fn

    def __call__(self, key, image):
        return self.fn(key, image)

    def __repr__(self) -> str:
        return f"Transform({self.name})"


def pad(width: int, *, value: float = 0.5) -> Transform:
    """Pads ``width`` pixels of ``value`` on every side (Lucid pads with 0.5 grey).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain.featurevis import pad
      >>> pad(2)(jax.random.key(0), jnp.zeros((4, 4, 3))).shape
      (8, 8, 3)

    References:
      Lucid, ``lucid/optvis/transform.py`` (``pad``); Olah, Mordvintsev & Schubert (2017).
    """
    w = _checks.check_int("featurevis.pad", "width", width, minimum=0)
    v = float(value)
    return Transform(f"pad({w})", lambda key, x: jnp.pad(x, ((w, w), (w, w), (0, 0)), constant_values=v))


def jitter(d: int) -> Transform:
    """A random crop of ``(H - d, W - d)``: the image shifted by up to ``d`` pixels.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain.featurevis import jitter
      >>> jitter(3)(jax.random.key(0), jnp.zeros((10, 10, 3))).shape
      (7, 7, 3)

    References:
      Lucid, ``lucid/optvis/transform.py`` (``jitter``); Mordvintsev, Olah & Tyka (2015).
    """
    d = _checks.check_int("featurevis.jitter", "d", d, minimum=1)

    def fn(key, x):
        h, w, c = x.shape
        if d >= min(h, w):
            raise ValueError(f"jaxplain.featurevis.jitter: d={d} leaves nothing of a {h}x{w} image.")
        oy, ox = jax.random.randint(key, (2,), 0, d + 1)
        return jax.lax.dynamic_slice(x, (oy, ox, 0), (h - d, w - d, c))

    return Transform(f"jitter({d})", fn)


def _resample(x, matrix, offset):
    """``out[p] = x[matrix @ p + offset]`` (bilinear, edges repeated) for one (H, W, C) image."""
    h, w, _ = x.shape
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=x.dtype), jnp.arange(w, dtype=x.dtype), indexing="ij")
    coords = jnp.einsum("ij,jhw->ihw", matrix.astype(x.dtype), jnp.stack([yy, xx])) + offset[:, None, None]
    sample = lambda ch: jax.scipy.ndimage.map_coordinates(ch, list(coords), order=1, mode="nearest")
    return jax.vmap(sample, in_axes=-1, out_axes=-1)(x)


def _about_centre(x, matrix):
    h, w, _ = x.shape
    centre = jnp.asarray([(h - 1) / 2, (w - 1) / 2], x.dtype)
    return _resample(x, matrix, centre - matrix.astype(x.dtype) @ centre)


def _choices(where: str, name: str, values) -> np.ndarray:
    arr = np.asarray(values, np.float32)
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"jaxplain.{where}: {name} must be a non-empty list of numbers, got {values!r}.")
    return arr


def random_scale(scales: Sequence[float]) -> Transform:
    """Zooms about the centre by a scale drawn from ``scales`` (the size is kept: Lucid resizes).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain.featurevis import random_scale
      >>> x = jnp.arange(16.0).reshape(4, 4, 1)
      >>> bool(jnp.allclose(random_scale([1.0])(jax.random.key(0), x), x))
      True

    References:
      Lucid, ``lucid/optvis/transform.py`` (``random_scale``); Olah, Mordvintsev & Schubert (2017).
    """
    s = jnp.asarray(_choices("featurevis.random_scale", "scales", scales))
    if bool(jnp.any(s <= 0)):
        raise ValueError(f"jaxplain.featurevis.random_scale: scales must be > 0, got {scales!r}.")

    def fn(key, x):
        k = jax.random.choice(key, s)
        return _about_centre(x, jnp.eye(2) / k)

    return Transform("random_scale", fn)


def random_rotate(angles: Sequence[float]) -> Transform:
    """Rotates about the centre by an angle (degrees) drawn from ``angles``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain.featurevis import random_rotate
      >>> x = jnp.arange(9.0).reshape(3, 3, 1)
      >>> random_rotate([90])(jax.random.key(0), x)[..., 0].astype(int).tolist()
      [[2, 5, 8], [1, 4, 7], [0, 3, 6]]

    References:
      Lucid, ``lucid/optvis/transform.py`` (``random_rotate``); Olah, Mordvintsev & Schubert (2017).
    """
    a = jnp.asarray(_choices("featurevis.random_rotate", "angles", angles))

    def fn(key, x):
        t = jnp.deg2rad(jax.random.choice(key, a))
        c, s = jnp.cos(t), jnp.sin(t)
        return _about_centre(x, jnp.asarray([[c, s], [-s, c]]))

    return Transform("random_rotate", fn)


def compose(*transforms: Transform) -> Transform:
    """Applies ``transforms`` in order, each with its own key.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain.featurevis import compose, jitter, pad
      >>> compose(pad(4), jitter(2))(jax.random.key(0), jnp.zeros((8, 8, 3))).shape
      (14, 14, 3)

    References:
      Lucid, ``lucid/optvis/transform.py`` (``compose``).
    """
    for t in transforms:
        if not isinstance(t, Transform):
            raise TypeError(f"jaxplain.featurevis.compose: every transform must be a featurevis "
                            f"Transform (pad, jitter, ...), got {type(t).__name__}.")

    def fn(key, x):
        for k, t in zip(jax.random.split(key, max(len(transforms), 1)), transforms):
            x = t(k, x)
        return x

    return Transform(" > ".join(t.name for t in transforms) or "identity", fn)


def standard() -> Transform:
    """Lucid's ``standard_transforms``: pad 12 (grey), jitter 8, scale 0.9..1.1, rotate -10..10
    degrees (0 five times more likely), jitter 4.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain.featurevis import standard
      >>> standard()(jax.random.key(0), jnp.zeros((32, 32, 3))).shape
      (44, 44, 3)

    References:
      Lucid, ``lucid/optvis/transform.py`` (``standard_transforms``); Olah, Mordvintsev &
      Schubert (2017), "Feature Visualization", Distill.
    """
    return compose(pad(12), jitter(8), _scale_and_rotate([1 + (i - 5) / 50.0 for i in range(11)],
                                                         list(range(-10, 11)) + 5 * [0]), jitter(4))


def _scale_and_rotate(scales, angles) -> Transform:
    """:func:`random_scale` then :func:`random_rotate` as one resampling (one bilinear
    interpolation instead of two: the same map, at half the cost)."""
    s = jnp.asarray(_choices("featurevis.random_scale", "scales", scales))
    a = jnp.asarray(_choices("featurevis.random_rotate", "angles", angles))

    def fn(key, x):
        ks, ka = jax.random.split(key)
        k, t = jax.random.choice(ks, s), jnp.deg2rad(jax.random.choice(ka, a))
        c, sn = jnp.cos(t), jnp.sin(t)
        # out[p] = rotated(scaled)[p]: the rotation's source point, then the zoom's source of that
        return _about_centre(x, (jnp.eye(2) / k) @ jnp.asarray([[c, sn], [-sn, c]]))

    return Transform("random_scale > random_rotate", fn)
