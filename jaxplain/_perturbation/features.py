"""What a perturbation method perturbs: sliding windows (occlusion) and feature masks (ablation,
Shapley values), checked when the method is built, and the evaluation of ``f`` at many perturbed
inputs in chunks of ``batch_size`` (``jaxplain._paths.chunked_map``), so memory stays bounded.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from jaxplain import _paths

__all__ = ["Windows", "windows", "feature_mask", "check_broadcast", "evaluate", "single_array"]


class Windows(NamedTuple):
    """Sliding windows over ``shape``: ``starts`` ``(K, ndim)`` and the per-axis indicators
    ``rows[i]`` ``(K, shape[i])`` (1 where window k covers index j of axis i)."""

    shape: tuple
    starts: np.ndarray
    rows: tuple


def _shape_option(where: str, name: str, value: Any, ndim: int) -> tuple:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * ndim
    if (not isinstance(value, (tuple, list)) or len(value) != ndim or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise ValueError(f"jaxplain.{where}: {name} must be an int >= 1 or a tuple of {ndim} such "
                         f"ints, one per axis of x, got {value!r}.")
    return tuple(value)


def windows(where: str, shape: tuple, window: Any, stride: Any) -> Windows:
    """Captum's ``Occlusion`` windows: along each axis, starts ``0, s, 2s, ...`` up to
    ``ceil((n - w) / s)`` shifts; the last window is cut at the edge of x."""
    ndim = len(shape)
    window = _shape_option(where, "window", window, ndim)
    stride = _shape_option(where, "stride", stride, ndim)
    if any(w > n for w, n in zip(window, shape)):
        raise ValueError(f"jaxplain.{where}: window {window} is larger than x {tuple(shape)} on some "
                         f"axis; each window entry must be <= x's size there.")
    if any(s > w and w < n for s, w, n in zip(stride, window, shape)):
        raise ValueError(f"jaxplain.{where}: stride {stride} is larger than the window {window} on an "
                         f"axis the window does not cover whole: elements there would never be "
                         f"occluded.")
    per_axis = [np.arange(int(np.ceil((n - w) / s)) + 1) * s for n, w, s in zip(shape, window, stride)]
    grids = np.meshgrid(*per_axis, indexing="ij")
    starts = np.stack([g.ravel() for g in grids], axis=1)
    rows = tuple(
        ((np.arange(n)[None, :] >= starts[:, i:i + 1]) & (np.arange(n)[None, :] < starts[:, i:i + 1] + w))
        .astype(np.float32) for i, (n, w) in enumerate(zip(shape, window)))
    return Windows(tuple(shape), starts, rows)


def feature_mask(where: str, mask: Any, shape: tuple | None = None) -> tuple[np.ndarray, int]:
    """A concrete integer mask with ids ``0 .. n - 1`` (every id used) and ``n``."""
    if mask is None:
        raise TypeError(f"jaxplain.{where}: mask is required: an integer array of feature ids "
                        f"broadcastable to x (0 .. n-1), e.g. a grid or superpixels.")
    m = np.asarray(mask)
    if not np.issubdtype(m.dtype, np.integer) or m.size == 0:
        raise TypeError(f"jaxplain.{where}: mask must be a non-empty integer array of feature ids, got "
                        f"dtype {m.dtype} and shape {m.shape}.")
    ids = np.unique(m)
    if ids[0] != 0 or ids[-1] != len(ids) - 1:
        missing = sorted(set(range(int(ids[-1]) + 1)) - set(ids.tolist()))[:5]
        raise ValueError(f"jaxplain.{where}: mask ids must be 0 .. n-1 with every id used, got ids "
                         f"from {ids[0]} to {ids[-1]} ({len(ids)} distinct"
                         f"{', missing ' + str(missing) if missing else ''}); renumber them, e.g. "
                         f"np.unique(mask, return_inverse=True)[1].reshape(mask.shape).")
    if shape is not None:
        check_broadcast(where, m, shape)
    return m, len(ids)


def check_broadcast(where: str, m: np.ndarray, shape: tuple) -> None:
    try:
        ok = np.broadcast_shapes(m.shape, tuple(shape)) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"jaxplain.{where}: mask of shape {m.shape} does not broadcast to x of shape "
                         f"{tuple(shape)}; give one id per element, or a shape that broadcasts (e.g. "
                         f"(H, W, 1) for an (H, W, C) image).")


def single_array(where: str, x: Any) -> None:
    if not isinstance(x, (jax.Array, np.ndarray)):
        raise TypeError(f"jaxplain.{where}: x must be one array for now, got a pytree "
                        f"{jax.tree_util.tree_structure(x)}; explain each leaf with the others held "
                        f"fixed (an argument of f), or concatenate them.")


def evaluate(f: Callable, make: Callable, codes: Any, x: Any, args: tuple, kwargs: dict,
             batch_size: int | None) -> jax.Array:
    """``[f(make(code), *args) for code in codes]``, vmapped in chunks of ``batch_size``."""
    return _paths.chunked_map(lambda c: f(make(c), *args, **kwargs), codes, batch_size=batch_size, like=x)
