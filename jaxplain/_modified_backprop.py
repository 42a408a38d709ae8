"""Modified backpropagation through ReLUs: guided backpropagation and deconvnet.

No hooks and no model changes: ``f`` is traced to a jaxpr (``jax.make_jaxpr``), and a small
interpreter evaluates that program again with every ReLU replaced by a ``jax.custom_vjp`` ReLU
whose backward pass follows the method's rule; the gradient of the re-evaluated program is the
attribution. The forward values are unchanged.

What counts as a ReLU: ``jax.nn.relu`` (also reached as ``flax.linen.relu`` and ``nnx.relu``; in the
jaxpr a ``custom_jvp_call`` whose program is ``max(x, 0)``) and a plain ``max`` of a floating array
with a scalar zero literal (``jnp.maximum(x, 0)``, ``jnp.maximum(0.0, x)``). The interpreter looks
inside ``jit`` calls, ``closed_call``, ``jax.checkpoint`` (``remat``), ``lax.cond``/``lax.switch``
branches and ``lax.scan`` bodies (``flax.linen.scan`` included). It leaves alone, with a warning
when they hold a ReLU, loops it cannot re-run (``lax.while_loop``, which reverse-mode
differentiation rejects anyway) and other higher-order primitives. Functions with a derivative rule
of their own (``jax.custom_jvp``/``jax.custom_vjp``, e.g. ``jax.nn.relu6``) keep that rule. Other
spellings of a ReLU (``jnp.where(x > 0, x, 0)``, ``x * (x > 0)``, ``jnp.clip(x, 0)``) are not
recognized and keep their ordinary gradient.
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

from jaxplain import _contract as C
from jaxplain import _jaxpr as J
from jaxplain._jaxpr import bind as _bind
from jaxplain._jaxpr import is_float as _is_float
from jaxplain._jaxpr import is_zero_literal as _is_zero_literal
from jaxplain._jaxpr import open_jaxpr as _open
from jaxplain._jaxpr import trace as _trace

__all__ = ["guided_backprop", "deconvnet", "relu_rule_gradient", "RULES"]


def _make_relu(name: str, backward: Callable) -> Callable:
    """A ReLU whose forward is ``max(x, 0)`` and whose backward is ``backward(x, g)``."""

    @jax.custom_vjp
    def relu(x):
        return jnp.maximum(x, 0)

    def fwd(x):
        return jnp.maximum(x, 0), x

    def bwd(x, g):
        return (backward(x, g).astype(g.dtype),)

    relu.defvjp(fwd, bwd)
    relu.__name__ = f"{name}_relu"
    return relu


#: The backward rules, ``g_in = rule(x, g_out)`` for ``relu(x)``.
RULES: dict[str, Callable] = {
    # Springenberg et al.: only positive signal, only through units that were active.
    "guided": _make_relu("guided", lambda x, g: jnp.where((x > 0) & (g > 0), g, 0)),
    # Zeiler & Fergus: the backward pass is rectified, whatever the unit's forward activation.
    "deconvnet": _make_relu("deconvnet", lambda x, g: jnp.maximum(g, 0)),
}

# Primitives that call a sub-program once with the equation's operands (the sub-program is in the
# "jaxpr" or "call_jaxpr" parameter).
_CALLS = J.CALLS
_REMAT = J.REMAT
# Primitives with a derivative rule of their own: bound as they are, rule kept.
_CUSTOM = ("custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr", "custom_lin")


def _subjaxprs(params: dict) -> list:
    """The (open) sub-programs held in an equation's parameters."""
    out = []
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, (jcore.ClosedJaxpr, jcore.Jaxpr)):
                out.append(_open(item))
    return out


def _is_relu_program(jaxpr) -> bool:
    """True for a program that is exactly ``max(x, 0)`` (possibly inside nested ``jit`` calls)."""
    jaxpr = _open(jaxpr)
    if len(jaxpr.invars) != 1 or len(jaxpr.eqns) != 1 or len(jaxpr.outvars) != 1:
        return False
    eqn = jaxpr.eqns[0]
    if eqn.outvars[0] is not jaxpr.outvars[0]:
        return False
    if _relu_operand(eqn) is not None:
        return eqn.invars[_relu_operand(eqn)] is jaxpr.invars[0]
    if eqn.primitive.name in _CALLS:
        subs = _subjaxprs(eqn.params)
        return len(subs) == 1 and eqn.invars == [jaxpr.invars[0]] and _is_relu_program(subs[0])
    return False


def _relu_operand(eqn) -> int | None:
    """The position of the ReLU's input if ``eqn`` is a ReLU, else None."""
    name = eqn.primitive.name
    if name == "max" and len(eqn.invars) == 2:
        for k in (0, 1):
            if _is_zero_literal(eqn.invars[1 - k]) and _is_float(eqn.invars[k]):
                return k
        return None
    if name == "custom_jvp_call" and len(eqn.invars) == 1 and _is_float(eqn.invars[0]):
        if _is_relu_program(eqn.params["call_jaxpr"]):
            return 0
    return None


def _contains_relu(jaxpr, memo: dict) -> bool:
    key = id(jaxpr)
    if key not in memo:
        memo[key] = False  # guards against cycles; programs are acyclic, so this is never read
        memo[key] = any(
            _relu_operand(eqn) is not None
            or (
                eqn.primitive.name not in _CUSTOM
                and any(_contains_relu(sub, memo) for sub in _subjaxprs(eqn.params))
            )
            for eqn in jaxpr.eqns
        )
    return memo[key]


def _eval(jaxpr, consts, args, relu: Callable, memo: dict) -> list:
    """Evaluates ``jaxpr`` with every ReLU replaced by ``relu``."""

    def step(eqn, invals):
        name = eqn.primitive.name
        k = _relu_operand(eqn)
        if k is not None:
            return [relu(invals[k])]
        if name in _CUSTOM or not any(_contains_relu(s, memo) for s in _subjaxprs(eqn.params)):
            return _bind(eqn, invals)
        if name in _CALLS:
            return _eval_closed(J.sub_jaxpr(eqn), invals, relu, memo)
        if name in _REMAT:
            body = functools.partial(_eval_closed, eqn.params["jaxpr"], relu=relu, memo=memo)
            return jax.checkpoint(
                lambda *a: body(list(a)),
                prevent_cse=eqn.params.get("prevent_cse", True),
                policy=eqn.params.get("policy"),
            )(*invals)
        if name == "cond":
            branches = [
                functools.partial(lambda br, *ops: _eval_closed(br, list(ops), relu, memo), br)
                for br in eqn.params["branches"]
            ]
            return jax.lax.switch(invals[0], branches, *invals[1:])
        if name == "scan":
            return _eval_scan(eqn, invals, relu, memo)
        warnings.warn(
            f"jaxplain: a ReLU inside the higher-order primitive {name!r} keeps its ordinary "
            f"gradient (the modified backward rule reaches ReLUs in jit, checkpoint, cond and "
            f"scan only).",
            stacklevel=4,  # step <- evaluate <- _eval <- its caller, as before the shared evaluator
        )
        return _bind(eqn, invals)

    return J.evaluate(jaxpr, consts, args, step)


def _eval_closed(closed, args, relu, memo):
    return _eval(J.open_jaxpr(closed), J.consts_of(closed), args, relu, memo)


def _eval_scan(eqn, invals, relu, memo):
    p = eqn.params
    nc, nk = p["num_consts"], p["num_carry"]
    consts, init, xs = invals[:nc], invals[nc : nc + nk], invals[nc + nk :]

    def step(carry, x):
        outs = _eval_closed(p["jaxpr"], [*consts, *carry, *x], relu, memo)
        return list(outs[:nk]), list(outs[nk:])

    carry, ys = jax.lax.scan(
        step, list(init), list(xs), length=p["length"], reverse=p["reverse"], unroll=p["unroll"]
    )
    return [*carry, *ys]


def relu_rule_gradient(f: Callable, rule: str, method: str | None = None) -> Callable:
    """``jax.grad(f)`` with every ReLU's backward pass replaced by ``rule``.

    ``f`` is traced with ``jax.make_jaxpr`` on each call (so inside ``jit``/``vmap`` once per
    compilation) and re-evaluated with :data:`RULES` ``[rule]`` ReLUs; see the module's notes for
    what counts as a ReLU.

    Args:
      f: ``f(x, *args) -> scalar`` for one example.
      rule: ``"guided"`` (``g * (x > 0) * (g > 0)``) or ``"deconvnet"`` (``relu(g)``).
      method: the public method name used in error messages (default: ``rule``).

    Returns:
      ``gradient(x, *args)`` shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain._modified_backprop import relu_rule_gradient
      >>> f = lambda x: jnp.sum(-1.0 * jnp.maximum(x, 0.0))  # negative gradient through the ReLU
      >>> relu_rule_gradient(f, "guided")(jnp.array([1.0, -1.0]))
      Array([0., 0.], dtype=float32)

    References:
      Springenberg, Dosovitskiy, Brox & Riedmiller (2015), "Striving for Simplicity: The All
      Convolutional Net", ICLR workshop; Zeiler & Fergus (2014), "Visualizing and Understanding
      Convolutional Networks", ECCV.
    """
    method = method or rule
    C.check_choice(method, "rule", rule, tuple(RULES))
    relu = RULES[rule]

    def modified(x, *args, **kwargs):
        traced = _trace(f, x, args, kwargs)
        outs = _eval(traced.closed.jaxpr, traced.closed.consts, traced.dyn, relu, {})
        return jax.tree_util.tree_unflatten(traced.out_tree, outs)

    return jax.grad(C.scalar_output(method, modified))


def guided_backprop(f: Callable) -> C.Explainer:
    """Guided backpropagation: the gradient with each ReLU passing back only positive signal
    through active units, ``g_in = g_out * (x > 0) * (g_out > 0)``.

    Equals Captum's ``GuidedBackprop`` on a model whose ReLUs are ``nn.ReLU`` modules. ReLUs are
    found by tracing ``f``; see :mod:`jaxplain._modified_backprop` for what counts as one. Without
    ReLUs the result is the plain gradient.

    Args:
      f: ``f(x, *args) -> scalar`` for one example; its ReLUs (``jax.nn.relu``, ``flax.linen.relu``,
        ``jnp.maximum(x, 0)``) need no model changes.

    Returns:
      ``explain(x, *args)`` shaped like ``x``; composes with ``jax.jit`` and ``jax.vmap``.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> w1 = jnp.array([[1.0, -1.0], [1.0, 1.0]]); w2 = jnp.array([1.0, -1.0])
      >>> f = lambda x: jnp.maximum(x @ w1, 0) @ w2
      >>> jx.guided_backprop(f)(jnp.array([1.0, 2.0]))  # unit 2's negative weight is blocked
      Array([1., 1.], dtype=float32)

    References:
      Springenberg, Dosovitskiy, Brox & Riedmiller (2015), "Striving for Simplicity: The All
      Convolutional Net", ICLR workshop, arXiv:1412.6806 (2014).
    """
    C.check_callable("guided_backprop", "f", f)
    return C.make_explainer(
        "guided_backprop", f, relu_rule_gradient(f, "guided", "guided_backprop"), {}
    )


def deconvnet(f: Callable) -> C.Explainer:
    """Deconvnet: the gradient with each ReLU rectifying the backward signal,
    ``g_in = relu(g_out)``, whatever the unit's forward activation.

    Equals Captum's ``Deconvolution`` on a model whose ReLUs are ``nn.ReLU`` modules. Like Captum,
    only the ReLUs change; convolutions pass the signal back with their own (transposed) weights
    and pooling layers with their ordinary gradient.

    Args:
      f: ``f(x, *args) -> scalar`` for one example.

    Returns:
      ``explain(x, *args)`` shaped like ``x``; composes with ``jax.jit`` and ``jax.vmap``.

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
    return C.make_explainer("deconvnet", f, relu_rule_gradient(f, "deconvnet", "deconvnet"), {})
