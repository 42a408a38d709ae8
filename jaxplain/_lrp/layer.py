"""``jaxplain.layer_lrp``: the relevance LRP hands to a layer (Captum's ``LayerLRP``).

The network above the layer is cut off as its own program, ``upper(A, x) = f`` with the layer's
output replaced by ``A``, and LRP runs on it from ``f(x)`` down to ``A``. The cut-off program
still computes (and drops) the layers below, so every layer keeps its place in the network (the
position tags of a composite: ``first``, ``last``, ``head``) and gets the rule
:func:`jaxplain.lrp` gives it on ``f``; relevance that reaches
``x`` past the layer (a skip connection around it) is not the layer's and is left out.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxplain import _checks, _paths, _taps
from jaxplain._contract import Explainer, make_explainer
from jaxplain._interpret import interpret
from jaxplain._lrp import composites as K
from jaxplain._lrp.api import propagate, resolve_rules
from jaxplain._lrp.propagate import LRPError

__all__ = ["layer_lrp"]


def layer_lrp(
    f: Callable | None = None,
    *,
    layer: Any = None,
    features: Callable | None = None,
    head: Callable | None = None,
    rules: Any = None,
    attribute_to_layer_input: bool = False,
    return_delta: bool = False,
) -> Explainer:
    """Layer-wise relevance propagation down to a layer: the relevance of each of its units.

    The same propagation as :func:`jaxplain.lrp` (same composite, same rules for the same layers),
    stopped at the output of ``layer`` (or its input, ``attribute_to_layer_input=True``) instead
    of ``x``. With a conserving composite on a bias-free network the layer's relevances sum to
    ``f(x)``; ``return_delta=True`` also returns ``sum(relevance) - f(x)`` (Captum's
    ``return_convergence_delta``). ``layer`` may be a tuple of paths of layers that do not feed
    each other (e.g. parallel branches): a tuple of relevances. Where part of ``f`` bypasses the
    layer (a residual connection around it), the relevance flowing past it is not counted.

    Args:
      f: ``f(x, *args) -> scalar`` for one example; with ``layer=``, the module path (see
        :func:`jaxplain.layers`). Or ``features(x) -> A`` and ``head(A, *args) -> scalar``.
      rules: a composite or one rule, as for :func:`jaxplain.lrp` (default
        ``jaxplain.composites.epsilon_plus_flat()``).
      attribute_to_layer_input: the relevance of the module's first positional input instead.
      return_delta: also return the conservation gap ``sum(relevance) - f(x)``.

    Returns:
      ``explain(x, *args)`` shaped like the layer's output for one example.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> w1 = jnp.array([[1.0, -1.0], [2.0, 1.0]]); w2 = jnp.array([1.0, 1.0])
      >>> ex = jx.layer_lrp(features=lambda x: jnp.maximum(x @ w1, 0), head=lambda a: a @ w2,
      ...                   rules=jx.rules.zero)
      >>> ex(jnp.array([1.0, 1.0]))  # the hidden units' shares of f(x) = 3
      Array([3., 0.], dtype=float32)

    References:
      Bach, Binder, Montavon, Klauschen, Müller & Samek (2015), "On Pixel-Wise Explanations for
      Non-Linear Classifier Decisions by Layer-Wise Relevance Propagation", PLoS ONE 10(7);
      Kokhlikyan et al. (2020), Captum (``LayerLRP``), arXiv:2009.07896.
    """
    name = "layer_lrp"
    sp = _taps.split(name, f, layer, features, head, layer_input=attribute_to_layer_input)
    composite = resolve_rules(name, K.epsilon_plus_flat() if rules is None else rules)
    return_delta = _checks.check_bool(name, "return_delta", return_delta)
    if f is not None:
        whole = f
    else:
        whole = lambda x, *args, **kwargs: head(features(x), *args, **kwargs)
    whole = _checks.scalar_output(name, whole)
    upper = _checks.scalar_output(name, lambda ax, *args, **kwargs: sp.rest(ax[1], ax[0], *args, **kwargs))

    def core(x, *args, **kwargs):
        sp.check_independent(x, args, kwargs)
        network = interpret(whole, x, args, kwargs, softmax=True).layers()
        a = sp.activation(x, *args, **kwargs)
        program = interpret(upper, (a, x), args, kwargs, softmax=True)
        # the program computes the layer below as f does and then drops it (make_jaxpr keeps
        # dead code), so its layers are f's, in f's order: each keeps its place and position tags
        floats = any(jnp.issubdtype(leaf.dtype, jnp.floating) for leaf in jax.tree_util.tree_leaves(x))
        if floats and program.layers() != network:  # (integer tokens: nothing below is a layer)
            raise LRPError(
                f"jaxplain.{name}: cut at {layer if f is not None else 'features'!r}, f's program "
                f"has the layers {program.layers()} instead of {network}; the composite's position "
                f"tags (first/last/head) would move. Please report this with your model."
            )
        y, (rel, _) = propagate(name, program, composite, (a, x))
        if not return_delta:
            return rel
        return rel, _paths.tree_total(rel) - y

    options = dict(layer=layer) if f is not None else dict(features=features, head=head)
    options["rules"] = composite if rules is None else rules
    if attribute_to_layer_input:
        options["attribute_to_layer_input"] = True
    if return_delta:
        options["return_delta"] = True
    return make_explainer(name, f if f is not None else features, core, options, integers=True)
