"""LIME (Ribeiro et al. 2016): a weighted linear surrogate of ``f`` fitted on random on/off
patterns of the feature groups, near the explained input."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxplain import _checks, _paths
from jaxplain._contract import Explainer, make_explainer
from jaxplain._perturbation import features as F

__all__ = ["lime", "DISTANCES", "SURROGATES"]

DISTANCES = ("cosine", "euclidean")
SURROGATES = ("ridge", "lasso")
_LASSO_SWEEPS = 200


def _ridge(a, y, w, alpha):
    """Weighted least squares with an intercept (unpenalized): ``(coef, intercept)``."""
    sw = jnp.sqrt(w)
    design = jnp.concatenate([a, jnp.ones((a.shape[0], 1), a.dtype)], axis=1) * sw[:, None]
    penalty = jnp.diag(jnp.concatenate([jnp.full(a.shape[1], alpha, a.dtype), jnp.zeros(1, a.dtype)]))
    beta = jnp.linalg.lstsq(design.T @ design + penalty, design.T @ (y * sw))[0]
    return beta[:-1], beta[-1]


def _lasso(a, y, w, alpha):
    """Weighted Lasso, ``min 1/(2 sum w) sum w (y - a.c - c0)^2 + alpha |c|_1``, by cyclic
    coordinate descent on the weighted-centred problem (as scikit-learn's ``Lasso``)."""
    w = w / jnp.sum(w)
    a_mean, y_mean = w @ a, w @ y
    ac, yc = a - a_mean, y - y_mean
    norms = w @ (ac * ac)

    def sweep(coef, _):
        def one(coef, j):
            r = yc - ac @ coef + ac[:, j] * coef[j]
            rho = jnp.sum(w * ac[:, j] * r)
            new = jnp.where(norms[j] > 0, jnp.sign(rho) * jnp.maximum(jnp.abs(rho) - alpha, 0) / norms[j], 0.0)
            return coef.at[j].set(new), None

        return jax.lax.scan(one, coef, jnp.arange(a.shape[1]))[0], None

    coef = jax.lax.scan(sweep, jnp.zeros(a.shape[1], a.dtype), None, length=_LASSO_SWEEPS)[0]
    return coef, y_mean - a_mean @ coef


def lime(f: Callable, *, mask: Any, samples: int = 256, baseline: Any = 0.0, distance: str = "cosine",
         kernel_width: float | None = None, surrogate: str = "ridge", alpha: float = 1.0,
         batch_size: int | None = None) -> Explainer:
    """LIME: the coefficients of a linear model of ``f`` on which feature groups are on.

    Each of ``samples`` draws turns every feature group on with probability 1/2 (on: x's values;
    off: the baseline's). A draw ``z`` weighs ``exp(-d(z, 1)^2 / kernel_width^2)``, with ``d`` the
    cosine distance ``1 - z.1 / (|z| |1|)`` or the Euclidean distance between ``z`` and the all-on
    pattern (the interpretable space, as the ``lime`` package does). The surrogate is a weighted
    ``"ridge"`` (penalty ``alpha``; ``alpha=0``: least squares) or ``"lasso"`` (L1 penalty ``alpha``,
    coordinate descent) regression with an unpenalized intercept; its coefficients are the
    attribution.

    Args:
      f: ``f(x, *args) -> scalar`` for one example.
      mask: integer feature ids ``0 .. n-1`` broadcastable to x (superpixels, a grid).
      samples: perturbed inputs drawn (``>= 1``).
      baseline: a number, an array broadcastable to x, or a function ``x -> baseline``.
      distance: ``"cosine"`` or ``"euclidean"``.
      kernel_width: the width of the exponential kernel (``> 0``); ``None``: the ``lime``
        package's defaults, 0.25 for the cosine distance (its images) and ``0.75 * sqrt(n)`` for
        the Euclidean one (its tables). The weights are computed relative to the nearest draw, so
        a narrow kernel never underflows to all zeros.
      surrogate: ``"ridge"`` or ``"lasso"``.
      alpha: the surrogate's penalty (``>= 0``).
      batch_size: perturbed inputs evaluated at once.

    Returns:
      ``explain(x, *args, key)`` with the shape of ``x`` (each element carries its group's
      coefficient).

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> f = lambda x: 2 * x[0] - x[1] + 0.5 * x[2] + 3.0
      >>> ex = jx.lime(f, mask=jnp.arange(3), samples=64, alpha=0.0)
      >>> [round(float(c), 4) for c in ex(jnp.ones(3), key=jax.random.key(0))]  # w * (x - 0)
      [2.0, -1.0, 0.5]

    References:
      Ribeiro, Singh & Guestrin (2016), "'Why Should I Trust You?': Explaining the Predictions of
      Any Classifier", KDD.
    """
    where = "lime"
    _checks.check_callable(where, "f", f)
    samples = _checks.check_int(where, "samples", samples, minimum=1)
    batch_size = _checks.check_batch_size(where, batch_size)
    _checks.check_baseline(where, baseline)
    distance = _checks.check_choice(where, "distance", distance, DISTANCES)
    surrogate = _checks.check_choice(where, "surrogate", surrogate, SURROGATES)
    alpha = _checks.check_float(where, "alpha", alpha)
    m0, n = F.feature_mask(where, mask)
    if kernel_width is None:
        kernel_width = 0.25 if distance == "cosine" else 0.75 * float(n) ** 0.5
    kernel_width = _checks.check_float(where, "kernel_width", kernel_width)
    if kernel_width == 0:
        raise ValueError(f"jaxplain.{where}: kernel_width must be > 0, got {kernel_width!r}.")
    if alpha == 0 and samples < n + 1:
        raise ValueError(f"jaxplain.{where}: an unpenalized fit of {n} coefficients and an intercept needs "
                         f"more than {n} samples, got {samples}; draw more, or pass alpha > 0.")
    g = _checks.scalar_output(where, f)
    fit = _ridge if surrogate == "ridge" else _lasso

    def core(x, *args, key, **kwargs):
        F.single_array(where, x)
        F.check_broadcast(where, m0, x.shape)
        m = jnp.broadcast_to(jnp.asarray(m0), x.shape)
        b = _paths.broadcast_like(where, "baseline", baseline, x)
        z = jax.random.bernoulli(key, 0.5, (samples, n)).astype(jnp.int32)
        y = F.evaluate(g, lambda keep: jnp.where(keep[m] == 1, x, b), z, x, args, kwargs, batch_size)
        zf = z.astype(y.dtype)
        if distance == "cosine":
            d = 1.0 - jnp.sum(zf, 1) / jnp.maximum(jnp.sqrt(jnp.sum(zf, 1) * n), 1e-12)
        else:
            d = jnp.sqrt(jnp.sum((1.0 - zf) ** 2, 1))
        weights = jnp.exp(-(d ** 2 - jnp.min(d ** 2)) / kernel_width ** 2)  # a common factor: no underflow
        coef, _ = fit(zf, y, weights, jnp.asarray(alpha, y.dtype))
        return coef.astype(x.dtype)[m]

    return make_explainer(where, f, core, dict(mask="given", samples=samples, baseline=baseline,
                                               distance=distance, kernel_width=kernel_width,
                                               surrogate=surrogate, alpha=alpha, batch_size=batch_size),
                          needs_key=True)
