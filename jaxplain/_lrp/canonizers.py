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
import warnings
from typing import Callable, NamedTuple

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


def _moved_axis(in_shape, out_shape, axis: int) -> int | None:
    """Where ``axis`` of ``in_shape`` lands after a reshape that only adds or drops axes of size 1
    (Flax's batch axis for one example); None for any other reshape, or a channel axis of size 1."""
    if in_shape[axis] == 1:
        return None
    big_in = [d for d, n in enumerate(in_shape) if n != 1]
    big_out = [d for d, n in enumerate(out_shape) if n != 1]
    if [in_shape[d] for d in big_in] != [out_shape[d] for d in big_out]:
        return None
    return big_out[big_in.index(axis)]


class _Plan(NamedTuple):
    """A layer (operand ``k`` depends on x; ``w_axis`` its kernel's output channel axis) and the
    chain after it: ``(eqn index, position of the constant operand or None for a reshape, the
    channel axis of the chain value the eqn reads)``."""

    k: int
    w_axis: int
    chain: tuple


def _plan(jaxpr, active: set) -> dict:
    """Layer eqn index -> its :class:`_Plan`, for each layer followed by per-channel constants
    with a scale (``mul``/``div``) among them, through reshapes that keep the channel axis."""
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
        axis, w_axis = axes
        v, chain = eqn.outvars[0], []
        while v not in outs and len(consumers.get(v, [])) == 1 and axis is not None:
            j = consumers[v][0]
            e = jaxpr.eqns[j]
            if e.primitive.name in A.RESHAPES and len(e.invars) == 1:
                moved = _moved_axis(v.aval.shape, e.outvars[0].aval.shape, axis)
                if moved is None:
                    break
                chain.append((j, None, axis))
                v, axis = e.outvars[0], moved
                continue
            if e.primitive.name not in _CHAIN or len(e.invars) != 2:
                break
            other = e.invars[1] if e.invars[0] is v else e.invars[0]
            if e.invars[0] is not v and e.primitive.name in ("sub", "div"):
                break  # k - z or k / z: not of the form a * z + c with a per-channel a
            if J.is_var(other) and other in active:
                break
            shape = getattr(other.aval, "shape", ())
            if e.outvars[0].aval.shape != v.aval.shape or not _per_channel(shape, v.aval.shape, axis):
                break
            chain.append((j, 1 if e.invars[0] is v else 0, axis))
            v = e.outvars[0]
        while chain and chain[-1][1] is None:  # trailing reshapes stay as they are
            chain.pop()
        if any(jaxpr.eqns[j].primitive.name in ("mul", "div") for j, _, _ in chain):
            plans[i] = _Plan(k, w_axis, tuple(chain))
    return plans


def _channel_vector(c, shape, axis: int, n: int):
    """A constant that varies only along ``axis`` of ``shape``, as a vector of length ``n``."""
    c = jnp.asarray(c)
    c = jnp.reshape(c, (1,) * (len(shape) - c.ndim) + c.shape)
    return jnp.broadcast_to(c, tuple(n if d == axis else 1 for d in range(len(shape)))).reshape(n)


def _merged(jaxpr, i: int, plan: _Plan, layer_in: list, others: list):
    """The layer at equation ``i`` on ``layer_in`` with its chain's constants ``others`` merged."""
    eqn = jaxpr.eqns[i]
    w = layer_in[1 - plan.k]
    n = w.shape[plan.w_axis]
    scale, shift = jnp.ones((n,), w.dtype), jnp.zeros((n,), w.dtype)
    consts = iter(others)
    for j, pos, axis in plan.chain:
        if pos is None:
            continue
        e = jaxpr.eqns[j]
        c = _channel_vector(next(consts), e.outvars[0].aval.shape, axis, n).astype(w.dtype)
        name = e.primitive.name
        if name == "add":
            shift = shift + c
        elif name == "sub":
            shift = shift - c
        elif name == "mul":
            scale, shift = scale * c, shift * c
        else:
            scale, shift = scale / c, shift / c
    w_shape = [1] * w.ndim
    w_shape[plan.w_axis] = n
    ins = list(layer_in)
    ins[1 - plan.k] = (w * scale.reshape(w_shape)).astype(w.dtype)
    z = J.bind_at_source(eqn, ins)[0]
    for j, pos, _ in plan.chain:  # the chain's reshapes, in order
        if pos is None:
            z = J.bind_at_source(jaxpr.eqns[j], [z])[0]
    last_j, _, axis = plan.chain[-1]
    last = jaxpr.eqns[last_j]
    out_shape = last.outvars[0].aval.shape
    bias = shift.reshape(tuple(n if d == axis else 1 for d in range(len(out_shape)))).astype(z.dtype)
    # the merged bias, added by the chain's last add so that it keeps the module's path
    return J.bind_at_source(last, [z, bias])[0] if last.primitive.name == "add" else z + bias


def _unmerged(jaxpr, active: set, plans: dict, x_vars: set, prefix: str) -> list[str]:
    """Module paths (and source lines) of per-channel scalings of x-dependent values, such as a
    BatchNorm's, that no plan merges (input standardization of x itself aside)."""
    merged = {j for plan in plans.values() for j, _, _ in plan.chain}
    found = []
    for j, e in enumerate(jaxpr.eqns):
        if j in merged or e.primitive.name not in ("mul", "div") or len(e.invars) != 2:
            continue
        dep = [J.is_var(v) and v in active for v in e.invars]
        if sum(dep) != 1:
            continue
        value, const = (e.invars[0], e.invars[1]) if dep[0] else (e.invars[1], e.invars[0])
        shape = tuple(getattr(const.aval, "shape", ()))
        if value in x_vars or sum(s != 1 for s in shape) != 1 or not J.is_float(e.outvars[0]):
            continue
        path = J.module_path(prefix, e)
        found.append(f"{path!r} ({J.source(e)})" if path else J.source(e))
    return found


def _evaluate(jaxpr, consts, args, active_in, prefix: str = "", missed: list | None = None):
    active = A.dependents(jaxpr, active_in)
    plans = _plan(jaxpr, active)
    if missed is not None:
        x_vars = {v for v, a in zip(jaxpr.invars, active_in) if a} if not prefix else set()
        missed.extend(_unmerged(jaxpr, active, plans, x_vars, prefix))
    # The merged layer is computed at its chain's last operation, when every constant is known:
    # the layer's inputs and each chain member's constant are kept until then.
    role = {}  # id(eqn) -> (the layer's eqn index, None for the layer / its constant's position)
    for i, plan in plans.items():
        role[id(jaxpr.eqns[i])] = (i, None)
        role.update((id(jaxpr.eqns[j]), (i, pos)) for j, pos, _ in plan.chain)
    kept = collections.defaultdict(list)  # layer index -> [the layer's inputs, constants...]
    is_layer = {id(jaxpr.eqns[i]) for i in plans}

    def step(eqn, invals):
        if id(eqn) not in role:
            ins = [J.is_var(v) and v in active for v in eqn.invars]
            sub = J.sub_jaxpr(eqn)
            if any(ins) and sub is not None and eqn.primitive.name in (*J.CALLS, *J.REMAT):
                return _evaluate(J.open_jaxpr(sub), J.consts_of(sub), invals, ins,
                                 J.name_stack(prefix, eqn), missed)
            return J.bind_at_source(eqn, invals)
        i, pos = role[id(eqn)]
        if id(eqn) in is_layer:
            kept[i].append(invals)
        elif pos is not None:
            kept[i].append(invals[pos])
        plan = plans[i]
        if jaxpr.eqns[plan.chain[-1][0]] is not eqn:
            return [None] * len(eqn.outvars)  # read by the next chain member only, which skips it
        layer_in, *others = kept.pop(i)
        return [_merged(jaxpr, i, plan, layer_in, others)]

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
        missed: list = []
        outs = _evaluate(traced.closed.jaxpr, traced.closed.consts, vals, traced.x_mask, "", missed)
        if missed:
            shown = "; ".join(dict.fromkeys(missed))
            warnings.warn(
                f"jaxplain.canonizers.merge_batchnorm: {len(missed)} per-channel scaling(s) of "
                f"x-dependent values (a BatchNorm's, or alike) could not be merged into a dense or "
                f"convolution layer right before them: {shown}. They stay in the program, and "
                f"LRP passes relevance through them unchanged (their inputs come from something "
                f"other than a layer, e.g. a residual sum or an activation).",
                stacklevel=2,
            )
        return jax.tree_util.tree_unflatten(traced.out_tree, outs)

    return canonized
