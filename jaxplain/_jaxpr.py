"""Tracing ``f(x, *args, **kwargs)`` to a jaxpr and binding its equations again: the shared
ground of jaxplain's program transforms (the affine split, modified backprop, LRP and its
canonizers)."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

__all__ = [
    "CALLS",
    "REMAT",
    "Traced",
    "bind",
    "consts_of",
    "evaluate",
    "is_dynamic",
    "is_float",
    "is_var",
    "is_zero_literal",
    "open_jaxpr",
    "sub_jaxpr",
    "trace",
]

# Primitives that call a sub-program once with the equation's operands (held in the "jaxpr" or
# "call_jaxpr" parameter), and the rematerialization (checkpoint) primitives.
CALLS = ("jit", "pjit", "closed_call", "core_call")
REMAT = ("remat2", "checkpoint", "remat")


def is_var(v) -> bool:
    """Whether a jaxpr operand is a variable (not a literal)."""
    return not isinstance(v, jcore.Literal)


def is_float(v) -> bool:
    """Whether a jaxpr operand has a floating dtype."""
    dtype = getattr(getattr(v, "aval", None), "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jnp.floating)


def is_zero_literal(v) -> bool:
    """Whether a jaxpr operand is the literal scalar 0 (as in ``max(x, 0)``)."""
    if is_var(v):
        return False
    val = np.asarray(v.val)
    return val.ndim == 0 and val.dtype.kind in "iuf" and float(val) == 0.0


def open_jaxpr(j):
    """The open jaxpr of a ``ClosedJaxpr`` (or ``j`` itself)."""
    return j.jaxpr if isinstance(j, jcore.ClosedJaxpr) else j


def consts_of(j) -> list:
    """The constants of a ``ClosedJaxpr`` (none for an open one)."""
    return j.consts if isinstance(j, jcore.ClosedJaxpr) else []


def sub_jaxpr(eqn):
    """The sub-program of a call-like equation (``jit``, ``custom_jvp_call``...), or None."""
    for name in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        if name in eqn.params:
            return eqn.params[name]
    return None


def is_dynamic(leaf: Any) -> bool:
    """Whether a leaf of ``f``'s arguments becomes an input of the traced program (arrays and
    numbers do; anything else, e.g. a string option, stays a constant of the trace)."""
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, bool, int, float, complex))


def bind(eqn, invals: list) -> list:
    """Evaluates one equation on new inputs, as ``jax.core.eval_jaxpr`` does; always a list."""
    params = eqn.primitive.get_bind_params(eqn.params)
    with eqn.ctx.manager:
        out = eqn.primitive.bind(*invals, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def evaluate(jaxpr, consts: list, args: list, step: Callable) -> list:
    """Evaluates ``jaxpr`` on ``args``, each equation by ``step(eqn, invals) -> outvals`` (a list;
    :func:`bind` evaluates the equation as written), and returns its outputs."""
    env: dict = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    read = lambda v: env[v] if is_var(v) else v.val
    for eqn in jaxpr.eqns:
        env.update(zip(eqn.outvars, step(eqn, [read(v) for v in eqn.invars])))
    return [read(v) for v in jaxpr.outvars]


class Traced(NamedTuple):
    """``f(x, *args, **kwargs)`` as a program: ``closed`` takes ``dyn`` (the dynamic leaves of
    ``(x, args, kwargs)``), of which those at ``x_positions`` are ``x``'s leaves, in order."""

    closed: Any  # jax.extend.core.ClosedJaxpr
    out_tree: Any  # the structure of f's output
    dyn: list
    x_positions: list[int]


def trace(f: Callable, x: Any, args: tuple = (), kwargs: dict | None = None) -> Traced:
    """Traces ``f(x, *args, **kwargs)``; every leaf of ``x`` is an input of the program."""
    kwargs = {} if kwargs is None else kwargs
    leaves, tree = jax.tree_util.tree_flatten((x, args, kwargs))
    n_x = len(jax.tree_util.tree_leaves(x))
    dynamic = [i for i, leaf in enumerate(leaves) if i < n_x or is_dynamic(leaf)]

    def g(*dyn):
        full = list(leaves)
        for i, d in zip(dynamic, dyn):
            full[i] = d
        xx, aa, kk = jax.tree_util.tree_unflatten(tree, full)
        return f(xx, *aa, **kk)

    dyn = [leaves[i] for i in dynamic]
    closed, shapes = jax.make_jaxpr(g, return_shape=True)(*dyn)
    x_positions = [j for j, i in enumerate(dynamic) if i < n_x]
    return Traced(closed, jax.tree_util.tree_structure(shapes), dyn, x_positions)
