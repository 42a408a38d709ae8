"""Token attribution: any input-attribution method applied at the output of an embedding layer,
so that models whose input is integer tokens are explained without touching the model."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxplain import _checks, _taps
from jaxplain._contract import Explainer, make_explainer

__all__ = ["token_attribution", "REDUCTIONS"]

REDUCTIONS = ("sum", "norm", None)


def token_attribution(
    method: Callable,
    f: Callable,
    *,
    layer: str,
    baseline_token: int | None = None,
    reduce: str | None = "sum",
    **options: Any,
) -> Explainer:
    """Explains a model of integer tokens at its embedding layer, one score per token.

    With ``e = A(tokens)`` the output of the module at ``layer`` (e.g. an ``nn.Embed``) and
    ``head(e, *args)`` the rest of ``f`` with that output replaced, this is
    ``method(head, **options)`` applied at ``e``: any jaxplain method of ``x`` (gradients,
    integrated gradients, SmoothGrad, DeepLIFT, LRP...) on the embeddings, then reduced over the
    embedding axis (``reduce="sum"``: the signed sum, Captum's convention, so integrated
    gradients' completeness carries over; ``"norm"``: the L2 norm, Inseq's; ``None``: keep the
    embedding axis). ``baseline_token`` (e.g. the PAD id) makes the method's ``baseline`` the
    embedding of a sequence of that token (without it, the method's own default: zeros).

    Args:
      method: an explainer factory ``method(f, **options)``, e.g. ``jaxplain.integrated_gradients``,
        ``jaxplain.lrp``, or ``lambda g: jaxplain.smoothgrad(jaxplain.gradient(g), samples=16)``.
      f: ``f(tokens, *args) -> scalar`` for one sequence.
      layer: the module path of the embedding layer inside ``f`` (``jaxplain.layers`` lists them).
      baseline_token: a token id whose embedding is the baseline (for methods with ``baseline=``).
      reduce: ``"sum"``, ``"norm"`` or ``None``.
      **options: passed to ``method``.

    Returns:
      ``explain(tokens, *args)``: one score per token (shaped like the embedding output without its
      last axis), or the per-dimension attribution with ``reduce=None``; random methods take
      ``key=``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jaxplain as jx
      >>> class Bag(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, t):
      ...         return nn.Dense(2, name="out")(nn.Embed(10, 4, name="embed")(t).sum(-2))
      >>> model = Bag()
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 5), jnp.int32))
      >>> f = lambda t, c: model.apply(v, t[None])[0, c]
      >>> ig = jx.token_attribution(jx.integrated_gradients, f, layer="embed", baseline_token=0)
      >>> tokens = jnp.array([3, 1, 4, 1, 5])
      >>> scores = ig(tokens, 1)
      >>> scores.shape, bool(jnp.allclose(scores.sum(), f(tokens, 1) - f(jnp.zeros(5, int), 1), atol=1e-5))
      ((1, 5), True)

    References:
      Sundararajan, Taly & Yan (2017), "Axiomatic Attribution for Deep Networks", ICML (IG at the
      embeddings); Kokhlikyan et al. (2020), Captum; Sarti et al. (2023), "Inseq: An
      Interpretability Toolkit for Sequence Generation Models", ACL demo.
    """
    name = "token_attribution"
    _checks.check_callable(name, "method", method)
    sp = _taps.split(name, f, layer, None, None, many=False)
    reduce = _checks.check_choice(name, "reduce", reduce, REDUCTIONS)
    if baseline_token is not None:
        baseline_token = _checks.check_int(name, "baseline_token", baseline_token, minimum=0)
        if "baseline" in options:
            raise TypeError(f"jaxplain.{name}: pass baseline_token= or baseline=, not both.")
    probe = method(lambda e, *a, **k: jnp.sum(e), **options)  # options are checked now
    if not isinstance(probe, Explainer):
        raise TypeError(
            f"jaxplain.{name}: method must build a jaxplain explainer from a function, as "
            f"jaxplain.integrated_gradients does, but method(f, ...) returned "
            f"{type(probe).__name__}."
        )
    needs_key = probe.needs_key

    def core(tokens, *args, key=None, **kwargs):
        e = sp.activation(tokens, *args, **kwargs)
        opts = dict(options)
        if baseline_token is not None:
            pad = jax.tree_util.tree_map(lambda t: jnp.full_like(t, baseline_token), tokens)
            opts["baseline"] = sp.activation(pad, *args, **kwargs)
        explainer = method(lambda a, *aa, **kk: sp.rest(tokens, a, *aa, **kk), **opts)
        attr = explainer(e, *args, **({"key": key} if needs_key else {}), **kwargs)
        if reduce is None:
            return attr
        if reduce == "sum":
            return jax.tree_util.tree_map(lambda a: jnp.sum(a, axis=-1), attr)
        return jax.tree_util.tree_map(lambda a: jnp.sqrt(jnp.sum(a * a, axis=-1)), attr)

    opts = dict(method=getattr(method, "__name__", repr(method)), layer=layer, reduce=reduce, **options)
    if baseline_token is not None:
        opts["baseline_token"] = baseline_token
    return make_explainer(name, f, core, opts, needs_key=needs_key, integers=True)
