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

from jaxplain import _contract as C
from jaxplain import _jaxpr as J
from jaxplain._lrp import propagate as P

__all__ = ["merge_batchnorm"]

_CHAIN = ("add", "sub", "mul", "div")


def _bind(eqn, invals):
    """Binds ``eqn`` again under its own source info, so the module path survives the rewrite."""
    try:
        from jax._src import source_info_util

        with source_info_util.user_context(eqn.source_info.traceback, name_stack=eqn.source_info.name_stack):
            return J.bind(eqn, invals)
    except ImportError:  # pragma: no cover - private API moved
        return J.bind(eqn, invals)


def _channel_axes(eqn, k: int):
    """(output channel axis, kernel channel axis) of a layer eqn, or None if not a plain layer."""
    name = eqn.primitive.name
    out_nd = len(eqn.outvars[0].aval.shape)
    if name == "conv_general_dilated":
        dn = eqn.params["dimension_numbers"]
        return dn.out_spec[1], dn.rhs_spec[0]
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    w = eqn.invars[1 - k]
    if lb or rb:
        return None
    w_contract = rc if k == 0 else lc
    free = [d for d in range(len(w.aval.shape)) if d not in w_contract]
    if len(free) != 1:
        return None
    # dot_general output: lhs free dims, then rhs free dims
    return (out_nd - 1 if k == 0 else 0), free[0]


def _per_channel(aval_shape, out_shape, axis: int) -> bool:
    """Whether a constant of ``aval_shape`` varies only along ``axis`` of ``out_shape``."""
    if len(aval_shape) == 0:
        return True
    if len(aval_shape) > len(out_shape):
        return False
    shape = (1,) * (len(out_shape) - len(aval_shape)) + tuple(aval_shape)
    return all(s == 1 for d, s in enumerate(shape) if d != axis)


def _plan(jaxpr, active_in):
    """Layer eqn index -> (k, out axis, kernel axis, chain eqn indices) for mergeable chains."""
    active = {v for v, a in zip(jaxpr.invars, active_in) if a}
    consumers = collections.defaultdict(list)
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.invars:
            if J.is_var(v):
                consumers[v].append(i)
    outs = {v for v in jaxpr.outvars if J.is_var(v)}
    for eqn in jaxpr.eqns:
        if any(J.is_var(v) and v in active for v in eqn.invars):
            active.update(eqn.outvars)
    plans = {}
    for i, eqn in enumerate(jaxpr.eqns):
        ins = [J.is_var(v) and v in active for v in eqn.invars]
        k = P._layer_operand(eqn, ins)
        if k is None:
            continue
        axes = _channel_axes(eqn, k)
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
            chain.append(j)
            v = e.outvars[0]
        if any(jaxpr.eqns[j].primitive.name in ("mul", "div") for j in chain):
            plans[i] = (k, axes, chain)
    return plans


def _evaluate(jaxpr, consts, args, active_in):
    plans = _plan(jaxpr, active_in)
    # The merged layer is computed at its chain's last operation, when every constant is known.
    at_end = {chain[-1]: i for i, (_, _, chain) in plans.items()}
    skip = {j for _, _, chain in plans.values() for j in chain[:-1]} | set(plans)
    env: dict = {}
    active = {v for v, a in zip(jaxpr.invars, active_in) if a}
    for v, c in zip(jaxpr.constvars, consts):
        env[v] = c
    for v, a in zip(jaxpr.invars, args):
        env[v] = a

    def read(v):
        return v.val if not J.is_var(v) else env[v]

    for i, eqn in enumerate(jaxpr.eqns):
        ins = [J.is_var(v) and v in active for v in eqn.invars]
        if any(ins):
            active.update(eqn.outvars)
        if i in skip:
            continue
        if i in at_end:
            i = at_end[i]
            eqn = jaxpr.eqns[i]
            k, (out_axis, w_axis), chain = plans[i]
            w = read(eqn.invars[1 - k])
            scale = jnp.ones((), w.dtype)
            shift = jnp.zeros((), w.dtype)
            v = eqn.outvars[0]
            for j in chain:
                e = jaxpr.eqns[j]
                other = read(e.invars[1] if e.invars[0] is v else e.invars[0])
                name = e.primitive.name
                if name == "add":
                    shift = shift + other
                elif name == "sub":
                    shift = shift - other
                elif name == "mul":
                    scale, shift = scale * other, shift * other
                else:
                    scale, shift = scale / other, shift / other
                v = e.outvars[0]
            n = w.shape[w_axis]
            out_nd = len(eqn.outvars[0].aval.shape)

            def lift(a):  # a constant broadcastable to the output, with the output's rank
                return jnp.reshape(a, (1,) * (out_nd - jnp.ndim(a)) + jnp.shape(a))

            s_vec = jnp.broadcast_to(lift(scale), tuple(n if d == out_axis else 1 for d in range(out_nd)))
            w_shape = [1] * w.ndim
            w_shape[w_axis] = n
            w_merged = (w * s_vec.reshape(w_shape)).astype(w.dtype)
            ins_vals = [read(u) for u in eqn.invars]
            ins_vals[1 - k] = w_merged
            z = _bind(eqn, ins_vals)[0]
            # the merged bias, added by the chain's last add so it keeps the module's path
            bias = lift(shift).astype(z.dtype)
            last = jaxpr.eqns[chain[-1]]
            if last.primitive.name == "add":
                env[v] = _bind(last, [z, bias])[0]
            else:
                env[v] = z + bias
            continue
        invals = [read(u) for u in eqn.invars]
        sub = J.sub_jaxpr(eqn)
        if any(ins) and sub is not None and eqn.primitive.name in (*J.CALLS, *J.REMAT):
            outs = _evaluate(J.open_jaxpr(sub), J.consts_of(sub), invals, ins)
        else:
            outs = _bind(eqn, invals)
        for o, val in zip(eqn.outvars, outs):
            env[o] = val
    return [read(v) for v in jaxpr.outvars]


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
    C.check_callable("canonizers.merge_batchnorm", "f", f)

    @functools.wraps(f)
    def canonized(x, *args, **kwargs):
        program = P.trace(f, x, args, kwargs)
        active = [j in program.x_positions for j in range(len(program.dyn))]
        leaves, _ = jax.tree_util.tree_flatten(x)
        vals = list(program.dyn)
        for j, leaf in zip(program.x_positions, leaves):
            vals[j] = leaf
        outs = _evaluate(program.closed.jaxpr, program.closed.consts, vals, active)
        return jax.tree_util.tree_unflatten(program.out_tree, outs)

    return canonized
