"""Occlusion (Zeiler & Fergus 2014): slide a window over x, replace it by a baseline, and give each
element the mean drop of ``f`` over the windows that cover it (Captum's ``Occlusion``)."""

from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp

from jaxplain import _checks, _paths
from jaxplain._contract import Explainer, make_explainer
from jaxplain._perturbation import features as F

__all__ = ["occlusion"]


def occlusion(f: Callable, *, window: Any, stride: Any = 1, baseline: Any = 0.0,
              batch_size: int | None = None) -> Explainer:
    """Occlusion: ``attr[e] = mean over windows W covering e of f(x) - f(x with W set to baseline)``.

    Windows slide over every axis of ``x`` as Captum's ``sliding_window_shapes`` and ``strides``
    do: along an axis of size ``n``, window ``w`` and stride ``s``, they start at ``0, s, 2s, ...``,
    ``ceil((n - w) / s) + 1`` of them, the last cut at the edge. The perturbed inputs are evaluated
    ``batch_size`` at a time (``None``: chosen to bound memory), never all at once.

    Args:
      f: ``f(x, *args) -> scalar`` for one example.
      window: the window's shape, one entry per axis of x (an int: the same on every axis), e.g.
        ``(4, 4, 3)`` on an HWC image.
      stride: the step between windows, per axis (an int: the same on every axis); at most the
        window on an axis it does not cover whole.
      baseline: what an occluded window holds: a number, an array broadcastable to x, or a
        function ``x -> baseline`` (e.g. a blur, or the mean).
      batch_size: perturbed inputs evaluated at once.

    Returns:
      ``explain(x, *args)`` with the shape of ``x``.

    Raises:
      ValueError: a window larger than x, a stride larger than the window, a baseline that does
        not fit x (at call time).
      TypeError: x is a pytree (one array for now).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> w = jnp.array([1.0, -2.0, 3.0, 0.5])
      >>> jx.occlusion(lambda x: w @ x + 1.0, window=1)(jnp.ones(4)).tolist()  # w * (x - 0)
      [1.0, -2.0, 3.0, 0.5]

    References:
      Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks", ECCV.
    """
    where = "occlusion"
    _checks.check_callable(where, "f", f)
    batch_size = _checks.check_batch_size(where, batch_size)
    _checks.check_baseline(where, baseline)
    g = _checks.scalar_output(where, f)
    built: dict = {}

    def core(x, *args, **kwargs):
        F.single_array(where, x)
        key = tuple(x.shape)
        if key not in built:  # the windows depend only on x's shape (static under jit)
            built[key] = F.windows(where, key, window, stride)
        win = built[key]
        b = _paths.broadcast_like(where, "baseline", baseline, x)
        rows = tuple(jnp.asarray(r, x.dtype) for r in win.rows)

        def occluded(k):
            m = rows[0][k]
            for r in rows[1:]:
                m = m[..., None] * r[k]
            return x + m * (b - x)

        drops = g(x, *args, **kwargs) - F.evaluate(g, occluded, jnp.arange(len(win.starts)), x, args,
                                                    kwargs, batch_size)
        letters = "abcdefghijklmnopqrstuvwxyz"[: x.ndim]
        spec = ",".join(["k"] + [f"k{c}" for c in letters]) + "->" + letters
        total = jnp.einsum(spec, drops.astype(x.dtype), *rows)
        count = jnp.einsum(spec, jnp.ones(len(win.starts), x.dtype), *rows)
        return total / count

    for name, value in (("window", window), ("stride", stride)):  # x's shape is checked at call time
        n = 1 if isinstance(value, int) else len(value) if isinstance(value, (tuple, list)) else 0
        F._shape_option(where, name, value, max(n, 1))
    return make_explainer(where, f, core, dict(window=window, stride=stride, baseline=baseline,
                                               batch_size=batch_size))
