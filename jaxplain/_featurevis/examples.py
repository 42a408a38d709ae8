"""Dataset examples, filters and feature maps: what excites a unit among real inputs, and what a
layer computes on one input.

:func:`top_k` streams a dataset in batches and keeps the k highest (or lowest) scoring examples,
memory bounded by k, with ties broken as a stable ``argsort`` over the whole dataset would;
:func:`activation_crops` cuts out the region around each example's strongest activation;
:func:`filters` turns a convolution kernel into images, :func:`feature_maps` a layer's output into
one map per channel.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain import _checks, _taps

__all__ = ["TopK", "top_k", "activation_crops", "filters", "feature_maps"]


class TopK(NamedTuple):
    """The ``k`` selected examples: their ``indices`` in the dataset (in order, best first), their
    ``scores`` and the examples themselves.

    Example:
      >>> import numpy as np, jaxplain as jx
      >>> jx.featurevis.top_k(lambda x: -x[0], np.arange(4.0)[:, None], 1).scores.tolist()
      [-0.0]

    References:
      Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks", ECCV.
    """

    indices: np.ndarray
    scores: np.ndarray
    examples: np.ndarray


def _batches(where: str, data: Any, batch_size: int) -> Iterable:
    if isinstance(data, (np.ndarray, jax.Array)):
        return (data[i:i + batch_size] for i in range(0, len(data), batch_size))
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise TypeError(f"jaxplain.{where}: data must be an array of examples or an iterable of "
                        f"batches (arrays with a leading batch axis), got {type(data).__name__}.")
    return data


def top_k(score: Callable, data: Any, k: int, *, bottom: bool = False, batch_size: int = 256) -> TopK:
    """The ``k`` examples of ``data`` with the highest ``score(x)`` (lowest with ``bottom``),
    streamed in batches: memory bounded by ``k`` plus one batch.

    Ties are broken as ``np.argsort(-scores, kind="stable")`` over the whole dataset breaks them
    (``np.argsort(scores, kind="stable")`` for ``bottom``): the earlier example first.

    Args:
      score: ``score(x) -> scalar`` for one example, e.g. a class logit ``lambda x: f(x, 3)`` or an
        objective, ``lambda x: jx.objectives.channel(f, "stage1")(x, 7)``. Mapped with
        ``jax.jit(jax.vmap(score))``.
      data: an array of examples ``(N, ...)``, or an iterable of such batches (a data loader).
      k: how many to keep (``>= 1``; fewer if the dataset is smaller).
      bottom: keep the lowest scores instead.
      batch_size: batch size when ``data`` is an array.

    Returns:
      A :class:`TopK` ``(indices, scores, examples)``, best first.

    Raises:
      ValueError: a score is NaN, or ``k``/``batch_size`` < 1.
      TypeError: ``data`` is neither an array nor an iterable of batches, or ``score`` does not
        return a scalar.

    Example:
      >>> import numpy as np, jaxplain as jx
      >>> xs = np.array([[0.0], [3.0], [1.0], [3.0], [2.0]])
      >>> jx.featurevis.top_k(lambda x: x[0], xs, 3, batch_size=2).indices.tolist()
      [1, 3, 4]

    References:
      Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks", ECCV (the
      top-9 dataset examples of a unit); Olah, Mordvintsev & Schubert (2017), "Feature
      Visualization", Distill (dataset examples beside optimization).
    """
    where = "featurevis.top_k"
    _checks.check_callable(where, "score", score)
    k = _checks.check_int(where, "k", k, minimum=1)
    bottom = _checks.check_bool(where, "bottom", bottom)
    batch_size = _checks.check_int(where, "batch_size", batch_size, minimum=1)
    scored = jax.jit(jax.vmap(score))
    best_s = np.zeros((0,), np.float64)
    best_i = np.zeros((0,), np.int64)
    best_x = None
    seen = 0
    for xb in _batches(where, data, batch_size):
        xb = np.asarray(xb)
        s = np.asarray(scored(jnp.asarray(xb)), np.float64)
        if s.shape != (len(xb),):
            raise TypeError(f"jaxplain.{where}: score must return a scalar per example, but it "
                            f"returned shape {s.shape[1:]} for one example.")
        if np.isnan(s).any():
            raise ValueError(f"jaxplain.{where}: score is NaN for example "
                             f"{seen + int(np.flatnonzero(np.isnan(s))[0])}; a ranking of NaN "
                             f"scores is meaningless.")
        cand_s = np.concatenate([best_s, s])
        cand_i = np.concatenate([best_i, seen + np.arange(len(xb))])
        cand_x = xb if best_x is None else np.concatenate([best_x, xb])
        # earlier examples are first in the candidates, so a stable sort keeps them first on ties
        order = np.argsort(cand_s if bottom else -cand_s, kind="stable")[:k]
        best_s, best_i, best_x = cand_s[order], cand_i[order], cand_x[order]
        seen += len(xb)
    if best_x is None:
        raise ValueError(f"jaxplain.{where}: data holds no examples.")
    return TopK(best_i, best_s, best_x)


def activation_crops(f: Callable, layer: str, images: Any, channel: int, *args, size: int) -> np.ndarray:
    """For each image, the ``size x size`` input region around the position where ``channel`` of
    ``layer`` is most active (the position mapped to input pixels by the layer's stride).

    Args:
      f: ``f(x, *args)`` for one example; ``layer`` is a module path inside it.
      layer: a layer with spatial positions, output ``(h, w, C)`` per example (a leading batch axis
        of 1, as a closure calling ``model(x[None])`` gives, is dropped).
      images: ``(N, H, W, C)``.
      channel: the channel.
      *args: the extra arguments of ``f``.
      size: the crop's side in input pixels (``<= min(H, W)``).

    Returns:
      ``(N, size, size, C)`` crops, clamped to stay inside each image.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(4,), classes=2)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> xs = jax.random.uniform(jax.random.key(1), (3, 16, 16, 3))
      >>> jx.featurevis.activation_crops(f, "stage0/conv1", xs, 2, 0, size=6).shape
      (3, 6, 6, 3)

    References:
      Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks", ECCV; Olah
      et al. (2018), "The Building Blocks of Interpretability", Distill.
    """
    where = "featurevis.activation_crops"
    sp = _taps.split(where, f, layer, None, None, many=False)
    xs = jnp.asarray(images)
    size = _checks.check_int(where, "size", size, minimum=1)
    if xs.ndim != 4 or size > min(xs.shape[1:3]):
        raise ValueError(f"jaxplain.{where}: images must be (N, H, W, C) with size <= min(H, W), got "
                         f"shape {xs.shape} and size={size}.")

    def one(x):
        a = sp.activation(x, *args)
        a = a[0] if a.ndim == 4 and a.shape[0] == 1 else a
        if a.ndim != 3 or not 0 <= channel < a.shape[-1]:
            raise ValueError(f"jaxplain.{where}: layer {layer!r} gives shape {a.shape} per example; "
                             f"this needs (h, w, C) and 0 <= channel < C, got channel={channel}.")
        h, w = a.shape[:2]
        flat = jnp.argmax(a[..., channel])
        i, j = flat // w, flat % w
        cy = (i + 0.5) * x.shape[0] / h
        cx = (j + 0.5) * x.shape[1] / w
        top = jnp.clip(jnp.round(cy - size / 2).astype(int), 0, x.shape[0] - size)
        left = jnp.clip(jnp.round(cx - size / 2).astype(int), 0, x.shape[1] - size)
        return jax.lax.dynamic_slice(x, (top, left, 0), (size, size, x.shape[-1]))

    return np.asarray(jax.jit(jax.vmap(one))(xs))


def filters(kernel: Any) -> np.ndarray:
    """A convolution kernel ``(kh, kw, C_in, C_out)`` (Flax's layout) as ``C_out`` images
    ``(kh, kw, C_in)`` in ``[0, 1]``: 0.5 is zero, each filter scaled by its largest magnitude.

    Example:
      >>> import numpy as np, jaxplain as jx
      >>> k = np.zeros((3, 3, 3, 2)); k[1, 1, 0, 0] = -2.0; k[0, 0, 2, 1] = 1.0
      >>> imgs = jx.featurevis.filters(k)
      >>> imgs.shape, float(imgs[0, 1, 1, 0]), float(imgs[1, 0, 0, 2]), float(imgs[0, 0, 0, 0])
      ((2, 3, 3, 3), 0.0, 1.0, 0.5)

    References:
      Krizhevsky, Sutskever & Hinton (2012), "ImageNet Classification with Deep Convolutional
      Neural Networks", NeurIPS (first-layer filters shown as images).
    """
    k = np.asarray(kernel, np.float64)
    if k.ndim != 4:
        raise ValueError(f"jaxplain.featurevis.filters: kernel must be (kh, kw, C_in, C_out), got "
                         f"shape {k.shape}; a Flax nn.Conv's is params['kernel'].")
    k = np.moveaxis(k, -1, 0)
    m = np.abs(k).reshape(len(k), -1).max(axis=1)
    return 0.5 + k / (2 * np.where(m > 0, m, 1.0)[:, None, None, None])


def feature_maps(f: Callable, layer: str, x: Any, *args) -> np.ndarray:
    """The output of ``layer`` for one input ``x`` as one map per channel, ``(C, h, w)``.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(4,), classes=2)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> jx.featurevis.feature_maps(f, "stage0/conv1", jnp.ones((16, 16, 3)), 0).shape
      (4, 16, 16)

    References:
      Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks", ECCV.
    """
    where = "featurevis.feature_maps"
    sp = _taps.split(where, f, layer, None, None, many=False)
    a = np.asarray(sp.activation(jnp.asarray(x), *args))
    a = a[0] if a.ndim == 4 and a.shape[0] == 1 else a
    if a.ndim != 3:
        raise ValueError(f"jaxplain.{where}: layer {layer!r} gives shape {a.shape} per example; "
                         f"feature maps need spatial positions, (h, w, C).")
    return np.moveaxis(a, -1, 0)
