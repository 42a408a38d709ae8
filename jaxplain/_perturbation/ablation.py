"""Feature ablation: replace one group of features at a time by a baseline and give each element
its group's drop of ``f`` (Captum's ``FeatureAblation``)."""

from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp

from jaxplain import _checks, _paths
from jaxplain._contract import Explainer, make_explainer
from jaxplain._perturbation import features as F

__all__ = ["feature_ablation"]


def feature_ablation(f: Callable, *, mask: Any = None, baseline: Any = 0.0,
                     batch_size: int | None = None) -> Explainer:
    """Feature ablation: ``attr[e] = f(x) - f(x with e's feature group set to baseline)``.

    Args:
      f: ``f(x, *args) -> scalar`` for one example.
      mask: integer feature ids ``0 .. n-1`` broadcastable to x (e.g. ``(H, W, 1)`` superpixels
        for an ``(H, W, C)`` image: all channels of a pixel group together); ``None``: every
        element of x is its own feature (checked at call time).
      baseline: a number, an array broadcastable to x, or a function ``x -> baseline``.
      batch_size: ablated inputs evaluated at once.

    Returns:
      ``explain(x, *args)`` with the shape of ``x``.

    Raises:
      TypeError: a mask that is not an integer array.
      ValueError: mask ids with gaps, or a mask that does not broadcast to x (at call time).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> f = lambda x: x[0] * x[1] + x[2]
      >>> jx.feature_ablation(f, mask=jnp.array([0, 0, 1]))(jnp.array([2.0, 3.0, 4.0])).tolist()
      [6.0, 6.0, 4.0]

    References:
      Kokhlikyan et al. (2020), "Captum: A unified and generic model interpretability library for
      PyTorch" (FeatureAblation); Zeiler & Fergus (2014), ECCV (occluding parts of the input).
    """
    where = "feature_ablation"
    _checks.check_callable(where, "f", f)
    batch_size = _checks.check_batch_size(where, batch_size)
    _checks.check_baseline(where, baseline)
    fixed = None if mask is None else F.feature_mask(where, mask)
    g = _checks.scalar_output(where, f)

    def core(x, *args, **kwargs):
        F.single_array(where, x)
        if fixed is None:
            m, n = jnp.arange(x.size).reshape(x.shape), x.size
        else:
            F.check_broadcast(where, fixed[0], x.shape)
            m, n = jnp.broadcast_to(jnp.asarray(fixed[0]), x.shape), fixed[1]
        b = _paths.broadcast_like(where, "baseline", baseline, x)
        drops = g(x, *args, **kwargs) - F.evaluate(g, lambda j: jnp.where(m == j, b, x), jnp.arange(n),
                                                    x, args, kwargs, batch_size)
        return drops.astype(x.dtype)[m]

    return make_explainer(where, f, core, dict(mask="given" if mask is not None else None,
                                               baseline=baseline, batch_size=batch_size))
