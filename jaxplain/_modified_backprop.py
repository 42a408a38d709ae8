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

import warnings
from typing import Callable

import jax
import jax.numpy as jnp

from jaxplain import _checks, _taps
from jaxplain._contract import Explainer, make_explainer
from jaxplain._interpret import program as J
from jaxplain._interpret.analysis import readers, relu_operand
from jaxplain._interpret.patterns import feeds_only_a_root

__all__ = [
    "guided_backprop",
    "deconvnet",
    "neuron_guided_backprop",
    "neuron_deconvnet",
    "relu_rule_gradient",
    "RULES",
]


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


def _relus(jaxpr, memo: dict) -> frozenset:
    """The indices of the ReLUs of ``jaxpr``: ``max(v, 0)`` spellings (see the module's notes),
    except a clamp whose result only feeds a square root (a variance, as in Flax's LayerNorm)."""
    key = ("relus", id(jaxpr))
    if key not in memo:
        consumers = readers(jaxpr)
        memo[key] = frozenset(
            i for i, eqn in enumerate(jaxpr.eqns)
            if relu_operand(eqn) is not None and not feeds_only_a_root(jaxpr, i, consumers)
        )
    return memo[key]


def _contains_relu(jaxpr, memo: dict) -> bool:
    key = id(jaxpr)
    if key not in memo:
        memo[key] = False  # guards against cycles; programs are acyclic, so this is never read
        relus = _relus(jaxpr, memo)
        memo[key] = any(
            i in relus
            or (
                eqn.primitive.name not in J.CUSTOM
                and any(_contains_relu(sub, memo) for sub in J.subjaxprs(eqn.params))
            )
            for i, eqn in enumerate(jaxpr.eqns)
        )
    return memo[key]


def _eval(jaxpr, consts, args, relu: Callable, memo: dict) -> list:
    """Evaluates ``jaxpr`` with every ReLU replaced by ``relu``."""

    def evaluate_closed(closed, inner_args):
        return _eval(J.open_jaxpr(closed), J.consts_of(closed), inner_args, relu, memo)

    relus = {id(jaxpr.eqns[i]) for i in _relus(jaxpr, memo)}

    def step(eqn, invals):
        k = relu_operand(eqn) if id(eqn) in relus else None
        if k is not None:
            return [relu(invals[k])]
        if eqn.primitive.name in J.CUSTOM or not any(_contains_relu(s, memo) for s in J.subjaxprs(eqn.params)):
            return J.bind(eqn, invals)
        outs = J.rebuild(eqn, invals, evaluate_closed)
        if outs is not None:
            return outs
        warnings.warn(
            f"jaxplain: a ReLU inside the higher-order primitive {eqn.primitive.name!r} keeps its "
            f"ordinary gradient (the modified backward rule reaches ReLUs in jit, checkpoint, cond "
            f"and scan only).",
            stacklevel=4,  # step <- evaluate <- _eval <- its caller
        )
        return J.bind(eqn, invals)

    return J.evaluate(jaxpr, consts, args, step)


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
    _checks.check_choice(method, "rule", rule, tuple(RULES))
    relu = RULES[rule]

    def modified(x, *args, **kwargs):
        traced = J.trace(f, x, args, kwargs)
        outs = _eval(traced.closed.jaxpr, traced.closed.consts, traced.dyn, relu, {})
        return jax.tree_util.tree_unflatten(traced.out_tree, outs)

    return jax.grad(_checks.scalar_output(method, modified))


def guided_backprop(f: Callable) -> Explainer:
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
    _checks.check_callable("guided_backprop", "f", f)
    return make_explainer(
        "guided_backprop", f, relu_rule_gradient(f, "guided", "guided_backprop"), {}
    )


def deconvnet(f: Callable) -> Explainer:
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
    _checks.check_callable("deconvnet", "f", f)
    return make_explainer("deconvnet", f, relu_rule_gradient(f, "deconvnet", "deconvnet"), {})


def _neuron(name: str, rule: str, f, layer, neuron, features, head, layer_input) -> Explainer:
    _, unit = _taps.neuron_unit(name, f, layer, features, head, neuron, layer_input=layer_input)
    options = dict(layer=layer, neuron=neuron) if f is not None else dict(features=features, head=head, neuron=neuron)
    if layer_input:
        options["attribute_to_layer_input"] = True
    return make_explainer(name, f if f is not None else features, relu_rule_gradient(unit, rule, name), options)


def neuron_guided_backprop(f: Callable | None = None, *, layer=None, neuron, features=None, head=None,
                           attribute_to_layer_input: bool = False) -> Explainer:
    """Guided backpropagation of one internal unit (Captum's ``NeuronGuidedBackprop``): the
    modified gradient of ``x -> A(x)[neuron]``, every ReLU below the layer passing back only
    positive signal through active units.

    ``layer``/``neuron`` as for :func:`jaxplain.neuron_gradient` (an index tuple into the layer's
    output for one example, checked against its shape, or a callable ``A -> scalar``);
    ``attribute_to_layer_input=True`` selects the unit from the module's input (Captum's
    ``attribute_to_neuron_input``).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> w1 = jnp.array([[1.0, -1.0], [1.0, 1.0]]); w2 = jnp.array([[1.0], [-1.0]])
      >>> ex = jx.neuron_guided_backprop(features=lambda x: jnp.maximum(x @ w1, 0) @ w2,
      ...                                head=jnp.sum, neuron=(0,))
      >>> ex(jnp.array([1.0, 2.0]))  # the unit's negative weight on hidden unit 2 is blocked
      Array([1., 1.], dtype=float32)

    References:
      Springenberg, Dosovitskiy, Brox & Riedmiller (2015), "Striving for Simplicity: The All
      Convolutional Net", ICLR workshop; Kokhlikyan et al. (2020), Captum, arXiv:2009.07896.
    """
    return _neuron("neuron_guided_backprop", "guided", f, layer, neuron, features, head,
                   attribute_to_layer_input)


def neuron_deconvnet(f: Callable | None = None, *, layer=None, neuron, features=None, head=None,
                     attribute_to_layer_input: bool = False) -> Explainer:
    """Deconvnet of one internal unit (Captum's ``NeuronDeconvolution``): the gradient of
    ``x -> A(x)[neuron]`` with every ReLU rectifying the backward signal, ``g_in = relu(g_out)``.
    Options as in :func:`neuron_guided_backprop`.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> w1 = jnp.array([[1.0, -1.0], [1.0, 1.0]]); w2 = jnp.array([[1.0], [2.0]])
      >>> ex = jx.neuron_deconvnet(features=lambda x: jnp.maximum(x @ w1, 0) @ w2,
      ...                          head=jnp.sum, neuron=(0,))
      >>> ex(jnp.array([1.0, -2.0]))  # both hidden units pass back, active or not
      Array([-1.,  3.], dtype=float32)

    References:
      Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks", ECCV;
      Kokhlikyan et al. (2020), Captum, arXiv:2009.07896.
    """
    return _neuron("neuron_deconvnet", "deconvnet", f, layer, neuron, features, head,
                   attribute_to_layer_input)
