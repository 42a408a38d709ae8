"""Canonizers: rewrite ``f`` into an equivalent form that LRP rules explain better.

A canonizer is a pure function transform ``f -> f'``: ``f'`` computes the same outputs (up to
float rounding) and never touches the model or its parameters.

* :func:`merge_batchnorm`: a dense or convolution layer followed by per-channel affine operations
  with constants (BatchNorm in inference mode, a bias, a scale) becomes one layer with merged
  weights ``W' = W * s`` and bias ``b' = (b - mean) * s + beta``, ``s = scale / sqrt(var + eps)``
  (Zennit's ``MergeBatchNorm``). Without it LRP passes relevance through the BatchNorm unchanged
  and the layer's rule sees the unnormalized weights.
* Residual additions need no canonizer: LRP sees ``a + b`` in the program and splits relevance in
  proportion to ``a`` and ``b`` (the ``sum`` kind's ``norm`` rule), which is what Zennit's ResNet
  canonizer arranges by inserting a ``Sum`` module.

The rewrite works on the traced program (the jaxpr), so it reaches Flax Linen and NNX models and
plain JAX functions alike; it finds the layer and the operations after it by data flow, not by
module names.

Example:
  >>> import jax, jax.numpy as jnp, jaxplain as jx
  >>> from jaxplain.zoo import ResNet
  >>> model = ResNet(features=(4,), classes=3)
  >>> v = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  >>> f = lambda x, t: model.apply(v, x[None])[0, t]
  >>> g = jx.canonizers.merge_batchnorm(f)
  >>> x = jnp.ones((8, 8, 3))
  >>> bool(jnp.allclose(f(x, 1), g(x, 1), atol=1e-6))
  True

References:
  Guillemot, Heusele, Korichi, Schnebert & Chen (2020), "Breaking Batch Normalization for Better
  Explainability of Deep Neural Networks through Layer-wise Relevance Propagation",
  arXiv:2002.11018; Motzkus, Weber & Lapuschkin (2022), "Measurably Stronger Explanation
  Reliability via Model Canonization", ICIP; Zennit's canonizers (Anders et al. 2021).
"""

from __future__ import annotations

import collections
import functools
from typing import Callable

import jax
import jax.numpy as jnp

from jaxplain import _checks
from jaxplain._interpret import analysis as A
from jaxplain._interpret import program as J

__all__ = ["merge_batchnorm"]

_CHAIN = ("add", "sub", "mul", "div")


def _per_channel(aval_shape, out_shape, axis: int) -> bool:
    """Whether a constant of ``aval_shape`` varies only along ``axis`` of ``out_shape``."""
    if len(aval_shape) == 0:
        return True
    if len(aval_shape) > len(out_shape):
        return False
    shape = (1,) * (len(out_shape) - len(aval_shape)) + tuple(aval_shape)
    return all(s == 1 for d, s in enumerate(shape) if d != axis)


def _plan(jaxpr, active: set):
    """Layer eqn index -> (k, (out axis, kernel axis), chain) for mergeable chains; ``chain`` lists
    ``(eqn index, position of its constant operand)``."""
    consumers = A.readers(jaxpr)
    outs = {v for v in jaxpr.outvars if J.is_var(v)}
    plans = {}
    for i, eqn in enumerate(jaxpr.eqns):
        ins = [J.is_var(v) and v in active for v in eqn.invars]
        k = A.layer_operand(eqn, ins)
        if k is None:
            continue
        axes = A.channel_axes(eqn, k)
        if axes is None:
            continue
        out_axis, _ = axes
        v, chain = eqn.outvars[0], []
        while v not in outs and len(consumers.get(v, [])) == 1:
            j = consumers[v][0]
            e = jaxpr.eqns[j]
            if e.primitive.name not in _CHAIN or len(e.invars) != 2:
                break
            other = e.invars[1] if e.invars[0] is v else e.invars[0]
            if e.invars[0] is not v and e.primitive.name in ("sub", "div"):
                break  # k - z or k / z: not of the form a * z + c with a per-channel a
            if J.is_var(other) and other in active:
                break
            shape = getattr(other.aval, "shape", ())
            if e.outvars[0].aval.shape != v.aval.shape or not _per_channel(shape, v.aval.shape, out_axis):
                break
            chain.append((j, 1 if e.invars[0] is v else 0))
            v = e.outvars[0]
        if any(jaxpr.eqns[j].primitive.name in ("mul", "div") for j, _ in chain):
            plans[i] = (k, axes, chain)
    return plans


def _merged(eqn, k, axes, chain, layer_in: list, others: list, last) -> jax.Array:
    """The layer ``eqn`` on ``layer_in`` with the chain's constants ``others`` merged into it."""
    out_axis, w_axis = axes
    w = layer_in[1 - k]
    scale = jnp.ones((), w.dtype)
    shift = jnp.zeros((), w.dtype)
    for e, other in zip(chain, others):
        name = e.primitive.name
        if name == "add":
            shift = shift + other
        elif name == "sub":
            shift = shift - other
        elif name == "mul":
            scale, shift = scale * other, shift * other
        else:
            scale, shift = scale / other, shift / other
    n = w.shape[w_axis]
    out_nd = len(eqn.outvars[0].aval.shape)

    def lift(a):  # a constant broadcastable to the output, with the output's rank
        return jnp.reshape(a, (1,) * (out_nd - jnp.ndim(a)) + jnp.shape(a))

    s_vec = jnp.broadcast_to(lift(scale), tuple(n if d == out_axis else 1 for d in range(out_nd)))
    w_shape = [1] * w.ndim
    w_shape[w_axis] = n
    ins = list(layer_in)
    ins[1 - k] = (w * s_vec.reshape(w_shape)).astype(w.dtype)
    z = J.bind_at_source(eqn, ins)[0]
    # the merged bias, added by the chain's last add so it keeps the module's path
    bias = lift(shift).astype(z.dtype)
    return J.bind_at_source(last, [z, bias])[0] if last.primitive.name == "add" else z + bias


def _evaluate(jaxpr, consts, args, active_in):
    active = A.dependents(jaxpr, active_in)
    plans = _plan(jaxpr, active)
    # The merged layer is computed at its chain's last operation, when every constant is known:
    # the layer's inputs and each chain member's constant are kept until then.
    role = {}  # id(eqn) -> (the layer's eqn index, None for the layer / its constant's position)
    for i, (_, _, chain) in plans.items():
        role[id(jaxpr.eqns[i])] = (i, None)
        role.update((id(jaxpr.eqns[j]), (i, pos)) for j, pos in chain)
    kept = collections.defaultdict(list)  # layer index -> [the layer's inputs, constants...]

    def step(eqn, invals):
        if id(eqn) not in role:
            ins = [J.is_var(v) and v in active for v in eqn.invars]
            sub = J.sub_jaxpr(eqn)
            if any(ins) and sub is not None and eqn.primitive.name in (*J.CALLS, *J.REMAT):
                return _evaluate(J.open_jaxpr(sub), J.consts_of(sub), invals, ins)
            return J.bind_at_source(eqn, invals)
        i, pos = role[id(eqn)]
        kept[i].append(invals if pos is None else invals[pos])
        k, axes, chain = plans[i]
        if jaxpr.eqns[chain[-1][0]] is not eqn:
            return [None] * len(eqn.outvars)  # read by the next chain member only, which skips it
        layer_in, *others = kept.pop(i)
        chain_eqns = [jaxpr.eqns[j] for j, _ in chain]
        return [_merged(jaxpr.eqns[i], k, axes, chain_eqns, layer_in, others, eqn)]

    return J.evaluate(jaxpr, consts, args, step)


def merge_batchnorm(f: Callable) -> Callable:
    """Merges BatchNorm (and any per-channel affine operations with constants) into the dense or
    convolution layer before it: returns ``f'`` with ``f'(x, *args) == f(x, *args)``.

    The layer's weights become ``W * s`` and its bias ``(b - mean) * s + beta`` with ``s = scale /
    sqrt(var + eps)``; the BatchNorm disappears from the program. Only constants (parameters, not
    values computed from ``x``) are merged, and only where they vary along the output channel.

    Args:
      f: ``f(x, *args) -> scalar`` for one example, e.g. a Flax ResNet with BatchNorm in inference
        mode (:func:`jaxplain.flax.from_linen` / ``from_nnx``).

    Returns:
      ``f'`` with the same signature; pass it to :func:`jaxplain.lrp`.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> w = jnp.array([[1.0, -2.0]]); mean = jnp.array([0.5, 0.0]); s = jnp.array([2.0, -1.0])
      >>> f = lambda x: jnp.sum((x @ w - mean) * s)
      >>> g = jx.canonizers.merge_batchnorm(f)
      >>> float(f(jnp.array([3.0]))), float(g(jnp.array([3.0])))
      (11.0, 11.0)

    References:
      Guillemot et al. (2020), arXiv:2002.11018; Motzkus, Weber & Lapuschkin (2022), "Measurably
      Stronger Explanation Reliability via Model Canonization", ICIP.
    """
    _checks.check_callable("canonizers.merge_batchnorm", "f", f)

    @functools.wraps(f)
    def canonized(x, *args, **kwargs):
        traced = J.trace(f, x, args, kwargs, named=True)
        vals = traced.inputs(jax.tree_util.tree_leaves(x))
        outs = _evaluate(traced.closed.jaxpr, traced.closed.consts, vals, traced.x_mask)
        return jax.tree_util.tree_unflatten(traced.out_tree, outs)

    return canonized
