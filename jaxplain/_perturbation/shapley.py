"""Exact Shapley values of feature groups: every coalition evaluated once, combined with the
Shapley weights (Captum's ``ShapleyValues``, which walks all permutations, gives the same)."""

from __future__ import annotations

import math
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

from jaxplain import _checks, _paths
from jaxplain._contract import Explainer, make_explainer
from jaxplain._perturbation import features as F

__all__ = ["shapley_values", "MAX_EXACT_FEATURES"]

#: Exact Shapley values evaluate 2**n coalitions; above this many features use sampling.
MAX_EXACT_FEATURES = 16


def _weights(n: int) -> np.ndarray:
    """``W`` with ``phi = W @ v``, ``v[s]`` the value of coalition ``s`` (bit i: feature i present):
    ``phi_i = sum_{S not containing i} |S|! (n - |S| - 1)! / n! (v(S + i) - v(S))``."""
    sets = np.arange(2 ** n)
    sizes = np.array([bin(s).count("1") for s in sets])
    w = np.zeros((n, 2 ** n))
    for i in range(n):
        without = sets[(sets >> i) & 1 == 0]
        c = np.array([math.factorial(k) * math.factorial(n - k - 1) for k in sizes[without]]) / math.factorial(n)
        w[i, without | (1 << i)] += c
        w[i, without] -= c
    return w


def shapley_values(f: Callable, *, mask: Any, baseline: Any = 0.0, batch_size: int | None = None) -> Explainer:
    """Exact Shapley values of the feature groups of ``mask``, with absent features at the baseline:
    ``phi_i = sum over coalitions S without i of |S|!(n-|S|-1)!/n! (v(S + i) - v(S))``, ``v(S) =
    f(x with the features outside S at the baseline)``. Efficiency holds exactly: the values sum
    to ``f(x) - f(baseline)``. ``2**n`` evaluations: at most :data:`MAX_EXACT_FEATURES` features.

    Args:
      f: ``f(x, *args) -> scalar`` for one example.
      mask: integer feature ids ``0 .. n-1`` broadcastable to x.
      baseline: a number, an array broadcastable to x, or a function ``x -> baseline``.
      batch_size: coalitions evaluated at once.

    Returns:
      ``explain(x, *args)`` with the shape of ``x`` (each element carries its group's value).

    Raises:
      ValueError: more than :data:`MAX_EXACT_FEATURES` features, mask ids with gaps.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> f = lambda x: x[0] * x[1] + x[2]  # a product shares its value equally
      >>> jx.shapley_values(f, mask=jnp.arange(3))(jnp.array([2.0, 3.0, 4.0])).tolist()
      [3.0, 3.0, 4.0]

    References:
      Shapley (1953), "A Value for n-Person Games", Contributions to the Theory of Games II;
      Lundberg & Lee (2017), "A Unified Approach to Interpreting Model Predictions", NeurIPS.
    """
    where = "shapley_values"
    _checks.check_callable(where, "f", f)
    batch_size = _checks.check_batch_size(where, batch_size)
    _checks.check_baseline(where, baseline)
    m0, n = F.feature_mask(where, mask)
    if n > MAX_EXACT_FEATURES:
        raise ValueError(f"jaxplain.{where}: {n} features need 2**{n} evaluations; exact Shapley "
                         f"values allow at most {MAX_EXACT_FEATURES}. Group features into fewer ids, or "
                         f"sample (shapley_sampling / kernel_shap).")
    w = _weights(n)
    present = (np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1  # (2**n, n)
    g = _checks.scalar_output(where, f)

    def core(x, *args, **kwargs):
        F.single_array(where, x)
        F.check_broadcast(where, m0, x.shape)
        m = jnp.broadcast_to(jnp.asarray(m0), x.shape)
        b = _paths.broadcast_like(where, "baseline", baseline, x)
        values = F.evaluate(g, lambda keep: jnp.where(keep[m] == 1, x, b), jnp.asarray(present), x, args,
                            kwargs, batch_size)
        phi = jnp.asarray(w, values.dtype) @ values
        return phi.astype(x.dtype)[m]

    return make_explainer(where, f, core, dict(mask="given", baseline=baseline, batch_size=batch_size))
