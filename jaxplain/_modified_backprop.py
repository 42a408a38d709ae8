"""Modified backpropagation through ReLUs: guided backpropagation and deconvnet.

No hooks: ``f`` is traced to a jaxpr, and a small interpreter evaluates it with every ReLU
(``jax.nn.relu``, ``flax.linen.relu``, or ``max(x, 0)``) replaced by a ``jax.custom_vjp`` ReLU whose
backward pass follows the method's rule; the gradient of that program is the attribution. Calls
into ``jit`` and ``custom_jvp`` sub-programs are interpreted too; ReLUs inside loops (``scan``,
``while``) or other higher-order primitives keep their ordinary gradient.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

from jaxplain import _contract as C

__all__ = ["guided_backprop", "deconvnet", "relu_rule_gradient"]


def _make_relu(backward: Callable) -> Callable:
    @jax.custom_vjp
    def relu(x):
        return jnp.maximum(x, 0)

    def fwd(x):
        return jnp.maximum(x, 0), x

    def bwd(x, g):
        return (backward(x, g),)

    relu.defvjp(fwd, bwd)
    return relu


RULES = {
    # Springenberg et al.: pass only positive gradients through units that were active.
    "guided": _make_relu(lambda x, g: jnp.where((x > 0) & (g > 0), g, 0).astype(g.dtype)),
    # Zeiler & Fergus: the backward pass rectifies the signal, ignoring the forward activation.
    "deconvnet": _make_relu(lambda x, g: jnp.maximum(g, 0).astype(g.dtype)),
}


def _is_zero_literal(v) -> bool:
    return isinstance(v, jcore.Literal) and jnp.ndim(v.val) == 0 and float(v.val) == 0.0


def _is_relu_jaxpr(closed) -> bool:
    eqns = closed.jaxpr.eqns
    if len(eqns) != 1:
        return False
    e = eqns[0]
    if e.primitive.name == "max":
        return any(_is_zero_literal(v) for v in e.invars)
    if e.primitive.name in ("jit", "pjit", "closed_call"):
        return _is_relu_jaxpr(e.params["jaxpr"] if "jaxpr" in e.params else e.params["call_jaxpr"])
    return False


def _eval(jaxpr, consts, args, relu: Callable):
    env = {}

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, c in zip(jaxpr.constvars, consts):
        env[v] = c
    for v, a in zip(jaxpr.invars, args):
        env[v] = a
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        if name == "max" and len(invals) == 2 and any(_is_zero_literal(v) for v in eqn.invars):
            other = invals[1] if _is_zero_literal(eqn.invars[0]) else invals[0]
            outs = [relu(other)]
        elif name == "custom_jvp_call" and _is_relu_jaxpr(eqn.params["call_jaxpr"]):
            outs = [relu(invals[-1])]
        elif name == "custom_jvp_call":
            sub = eqn.params["call_jaxpr"]
            outs = _eval(sub.jaxpr, sub.consts, invals, relu)
        elif name in ("jit", "pjit") and "jaxpr" in eqn.params:
            sub = eqn.params["jaxpr"]
            outs = _eval(sub.jaxpr, sub.consts, invals, relu)
        else:
            out = eqn.primitive.bind(*invals, **eqn.params)
            outs = out if eqn.primitive.multiple_results else [out]
        for v, o in zip(eqn.outvars, outs):
            env[v] = o
    return [read(v) for v in jaxpr.outvars]


def relu_rule_gradient(f: Callable, rule: str) -> Callable:
    """``grad(f)`` with every ReLU's backward pass replaced by ``rule`` ("guided" or "deconvnet").

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain._modified_backprop import relu_rule_gradient
      >>> f = lambda x: jnp.sum(-1.0 * jnp.maximum(x, 0.0))  # negative gradient through the ReLU
      >>> relu_rule_gradient(f, "guided")(jnp.array([1.0, -1.0]))
      Array([0., 0.], dtype=float32)

    References:
      Springenberg, Dosovitskiy, Brox & Riedmiller (2015), "Striving for Simplicity: The All
      Convolutional Net", ICLR workshop.
    """
    relu = RULES[rule]

    def modified(x, *args, **kwargs):
        flat, tree = jax.tree_util.tree_flatten((x, args, kwargs))

        def g(*leaves):
            xx, aa, kk = jax.tree_util.tree_unflatten(tree, leaves)
            return f(xx, *aa, **kk)

        closed = jax.make_jaxpr(g)(*flat)
        (out,) = _eval(closed.jaxpr, closed.consts, flat, relu)
        return out

    def gradient(x, *args, **kwargs):
        return jax.grad(C.scalar_output(rule, modified))(x, *args, **kwargs)

    return gradient


def guided_backprop(f: Callable) -> C.Explainer:
    """Guided backpropagation: the gradient with each ReLU passing back only positive signal
    through active units, ``g_in = g_out * (x > 0) * (g_out > 0)`` (Captum's ``GuidedBackprop``).

    Args:
      f: ``f(x, *args) -> scalar`` for one example; its ReLUs (``jax.nn.relu``,
        ``flax.linen.relu``, ``max(x, 0)``) are found by tracing, no model changes needed.

    Returns:
      ``explain(x, *args)`` shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> w1 = jnp.array([[1.0, -1.0], [1.0, 1.0]]); w2 = jnp.array([1.0, -1.0])
      >>> f = lambda x: jnp.maximum(x @ w1, 0) @ w2
      >>> jx.guided_backprop(f)(jnp.array([1.0, 2.0]))  # unit 2's negative weight is blocked
      Array([1., 1.], dtype=float32)

    References:
      Springenberg, Dosovitskiy, Brox & Riedmiller (2015), "Striving for Simplicity: The All
      Convolutional Net", ICLR workshop.
    """
    C.check_callable("guided_backprop", "f", f)
    return C.make_explainer("guided_backprop", f, relu_rule_gradient(f, "guided"), {})


def deconvnet(f: Callable) -> C.Explainer:
    """Deconvnet: the gradient with each ReLU rectifying the backward signal, ``g_in = relu(g_out)``,
    whatever the unit's activation (Captum's ``Deconvolution``).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> w1 = jnp.array([[1.0, -1.0], [1.0, 1.0]]); w2 = jnp.array([1.0, 2.0])
      >>> f = lambda x: jnp.maximum(x @ w1, 0) @ w2
      >>> jx.deconvnet(f)(jnp.array([1.0, -2.0]))  # both units pass back, active or not
      Array([-1.,  3.], dtype=float32)

    References:
      Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks", ECCV.
    """
    C.check_callable("deconvnet", "f", f)
    return C.make_explainer("deconvnet", f, relu_rule_gradient(f, "deconvnet"), {})
