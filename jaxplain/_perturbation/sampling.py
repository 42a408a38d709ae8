"""Sampled Shapley values: permutation sampling (Castro et al. 2009) and KernelSHAP (Lundberg & Lee
2017), for feature groups too many to enumerate. Both take ``key=`` at call time; both satisfy
efficiency exactly (the values sum to ``f(x) - f(baseline)``) for every draw."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain import _checks, _paths
from jaxplain._contract import Explainer, make_explainer
from jaxplain._perturbation import features as F

__all__ = ["shapley_sampling", "kernel_shap"]


def _setup(where, f, mask, baseline, samples, batch_size):
    _checks.check_callable(where, "f", f)
    samples = _checks.check_int(where, "samples", samples, minimum=1)
    batch_size = _checks.check_batch_size(where, batch_size)
    _checks.check_baseline(where, baseline)
    m0, n = F.feature_mask(where, mask)
    return samples, batch_size, m0, n, _checks.scalar_output(where, f)


def _resolve(where, x, m0, baseline):
    F.single_array(where, x)
    F.check_broadcast(where, m0, x.shape)
    return jnp.broadcast_to(jnp.asarray(m0), x.shape), _paths.broadcast_like(where, "baseline", baseline, x)


def shapley_sampling(f: Callable, *, mask: Any, baseline: Any = 0.0, samples: int = 25,
                     antithetic: bool = False, batch_size: int | None = None) -> Explainer:
    """Shapley values estimated over ``samples`` random orders of the features: along each order,
    starting from the baseline, every feature gets the change of ``f`` when it is added (Captum's
    ``ShapleyValueSampling``). ``samples * (n + 1)`` evaluations.

    Args:
      f: ``f(x, *args) -> scalar`` for one example.
      mask: integer feature ids ``0 .. n-1`` broadcastable to x.
      baseline: a number, an array broadcastable to x, or a function ``x -> baseline``.
      samples: random orders (``>= 1``); with ``antithetic``, each is followed by its reverse
        (``2 * samples`` orders, lower variance).
      antithetic: pair every order with its reverse.
      batch_size: coalitions evaluated at once.

    Returns:
      ``explain(x, *args, key)`` with the shape of ``x`` (each element carries its group's value).

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> f = lambda x: 2 * x[0] - x[1] + 0.5 * x[2]  # additive: every order gives w * x
      >>> jx.shapley_sampling(f, mask=jnp.arange(3), samples=4)(jnp.ones(3), key=jax.random.key(0)).tolist()
      [2.0, -1.0, 0.5]

    References:
      Castro, Gomez & Tejada (2009), "Polynomial calculation of the Shapley value based on
      sampling", Computers & Operations Research; Strumbelj & Kononenko (2010), JMLR.
    """
    where = "shapley_sampling"
    samples, batch_size, m0, n, g = _setup(where, f, mask, baseline, samples, batch_size)
    antithetic = _checks.check_bool(where, "antithetic", antithetic)

    def core(x, *args, key, **kwargs):
        m, b = _resolve(where, x, m0, baseline)
        orders = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(key, samples))
        if antithetic:
            orders = jnp.concatenate([orders, orders[:, ::-1]])
        ranks = jnp.argsort(orders, axis=1)  # ranks[s, i]: where feature i comes in order s
        # coalition k of order s holds the features of rank < k: (orders, n + 1, n)
        present = (ranks[:, None, :] < jnp.arange(n + 1)[None, :, None]).astype(jnp.int32)
        values = F.evaluate(g, lambda keep: jnp.where(keep[m] == 1, x, b), present.reshape(-1, n), x, args,
                            kwargs, batch_size).reshape(present.shape[:2])
        gains = values[:, 1:] - values[:, :-1]  # gains[s, k]: the gain of the k-th feature of order s
        phi = jnp.mean(jnp.take_along_axis(gains, ranks, axis=1), axis=0)
        return phi.astype(x.dtype)[m]

    return make_explainer(where, f, core, dict(mask="given", baseline=baseline, samples=samples,
                                               antithetic=antithetic, batch_size=batch_size), needs_key=True)


def kernel_shap(f: Callable, *, mask: Any, baseline: Any = 0.0, samples: int = 64,
                batch_size: int | None = None) -> Explainer:
    """KernelSHAP: the weighted linear regression whose solution is the Shapley values, on
    ``samples`` coalitions drawn from the Shapley kernel, with efficiency as a constraint.

    A coalition's size ``s`` (``1 .. n-1``) is drawn with probability proportional to the Shapley
    kernel's total weight of that size, ``(n - 1) / (s (n - s))``, then its members uniformly; the
    draws then weigh alike. With ``d = f(x) - f(baseline)`` and ``y(z) = f(z) - f(baseline)``,
    ``phi`` minimizes ``sum (y(z) - z . phi)^2`` subject to ``sum phi = d`` (Lundberg & Lee's
    constrained form; the last value is eliminated and the rest found by least squares).

    Args:
      f: ``f(x, *args) -> scalar`` for one example.
      mask: integer feature ids ``0 .. n-1`` broadcastable to x.
      baseline: a number, an array broadcastable to x, or a function ``x -> baseline``.
      samples: coalitions drawn (``>= 1``; at least ``n`` to pin every value down).
      batch_size: coalitions evaluated at once.

    Returns:
      ``explain(x, *args, key)`` with the shape of ``x`` (each element carries its group's value).

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> f = lambda x: 2 * x[0] - x[1] + 0.5 * x[2] + 3.0
      >>> phi = jx.kernel_shap(f, mask=jnp.arange(3), samples=16)(jnp.ones(3), key=jax.random.key(0))
      >>> [round(float(p), 4) for p in phi]
      [2.0, -1.0, 0.5]

    References:
      Lundberg & Lee (2017), "A Unified Approach to Interpreting Model Predictions", NeurIPS.
    """
    where = "kernel_shap"
    samples, batch_size, m0, n, g = _setup(where, f, mask, baseline, samples, batch_size)
    if n > 1 and samples < n - 1:
        raise ValueError(f"jaxplain.{where}: {samples} samples cannot determine {n} Shapley values (the "
                         f"least squares needs at least n - 1 = {n - 1} draws; use several times more).")
    sizes = np.arange(1, n)
    p_size = (n - 1) / (sizes * (n - sizes)) if n > 1 else np.ones(0)
    p_size = p_size / p_size.sum() if n > 1 else p_size

    def core(x, *args, key, **kwargs):
        m, b = _resolve(where, x, m0, baseline)
        keep = lambda z: jnp.where(z[m] == 1, x, b)
        v_x, v_b = g(x, *args, **kwargs), g(b, *args, **kwargs)
        d = v_x - v_b
        if n == 1:
            return jnp.broadcast_to(d, x.shape).astype(x.dtype)
        k_size, k_members = jax.random.split(key)
        s = jax.random.choice(k_size, jnp.asarray(sizes), (samples,), p=jnp.asarray(p_size))
        scores = jax.random.uniform(k_members, (samples, n))
        ranks = jnp.argsort(jnp.argsort(scores, axis=1), axis=1)
        z = (ranks < s[:, None]).astype(jnp.int32)  # s random members
        y = F.evaluate(g, keep, z, x, args, kwargs, batch_size) - v_b
        zf = z.astype(y.dtype)
        a = zf[:, :-1] - zf[:, -1:]
        rhs = y - zf[:, -1] * d
        head = jnp.linalg.lstsq(a, rhs)[0]
        phi = jnp.concatenate([head, (d - jnp.sum(head))[None]])
        return phi.astype(x.dtype)[m]

    return make_explainer(where, f, core, dict(mask="given", baseline=baseline, samples=samples,
                                               batch_size=batch_size), needs_key=True)
