"""Programs: tracing ``f(x, *args, **kwargs)`` to a jaxpr, binding its equations again, and
re-evaluating it one equation at a time (higher-order primitives included)."""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from jaxplain import _taps

__all__ = [
    "CALLS",
    "CUSTOM",
    "REMAT",
    "Traced",
    "bind",
    "bind_at_source",
    "consts_of",
    "evaluate",
    "is_dynamic",
    "is_float",
    "is_var",
    "is_zero_literal",
    "module_path",
    "name_stack",
    "open_jaxpr",
    "rebuild",
    "source",
    "sub_jaxpr",
    "subjaxprs",
    "trace",
]

# Primitives that call a sub-program once with the equation's operands (held in the "jaxpr" or
# "call_jaxpr" parameter), and the rematerialization (checkpoint) primitives.
CALLS = ("jit", "pjit", "closed_call", "core_call")
REMAT = ("remat2", "checkpoint", "remat")
# Primitives with a derivative rule of their own (jax.custom_jvp / jax.custom_vjp functions).
CUSTOM = ("custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr", "custom_lin")


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


def subjaxprs(params: dict) -> list:
    """The (open) sub-programs held in an equation's parameters."""
    out = []
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, (jcore.ClosedJaxpr, jcore.Jaxpr)):
                out.append(open_jaxpr(item))
    return out


def source(eqn) -> str:
    """Where the operation was written: ``file:line (function)``."""
    try:
        from jax._src import source_info_util

        return source_info_util.summarize(eqn.source_info) or "unknown source"
    except Exception:  # pragma: no cover - private API moved
        return "unknown source"


def name_stack(prefix: str, eqn) -> str:
    """The operation's name stack, below ``prefix`` (the name stack of the call it is inside)."""
    return prefix + "/" + str(eqn.source_info.name_stack)


def module_path(prefix: str, eqn) -> str:
    """The module path of an operation, named as :func:`jaxplain.layers` names it."""
    return _taps.module_path(name_stack(prefix, eqn))


def bind(eqn, invals: list) -> list:
    """Evaluates one equation on new inputs, as ``jax.core.eval_jaxpr`` does; always a list."""
    params = eqn.primitive.get_bind_params(eqn.params)
    with eqn.ctx.manager:
        out = eqn.primitive.bind(*invals, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def bind_at_source(eqn, invals: list) -> list:
    """:func:`bind` under the equation's own source info, so a re-traced program keeps its module
    paths and source lines (program rewrites such as the canonizers)."""
    try:
        from jax._src import source_info_util

        ctx = source_info_util.user_context(
            eqn.source_info.traceback, name_stack=eqn.source_info.name_stack
        )
    except (ImportError, AttributeError):  # pragma: no cover - private API moved
        return bind(eqn, invals)
    with ctx:
        return bind(eqn, invals)


def evaluate(jaxpr, consts: list, args: list, step: Callable) -> list:
    """Evaluates ``jaxpr`` on ``args``, each equation by ``step(eqn, invals) -> outvals`` (a list;
    :func:`bind` evaluates the equation as written), and returns its outputs."""
    env: dict = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    read = lambda v: env[v] if is_var(v) else v.val
    for eqn in jaxpr.eqns:
        env.update(zip(eqn.outvars, step(eqn, [read(v) for v in eqn.invars])))
    return [read(v) for v in jaxpr.outvars]


def rebuild(eqn, invals: list, evaluate_closed: Callable) -> list | None:
    """A higher-order equation evaluated again with its sub-programs run by
    ``evaluate_closed(closed_jaxpr, args) -> outs``: calls (``jit``), checkpoints, ``cond``/``switch``
    and ``scan``. None for any other equation (e.g. ``while``, whose reverse-mode derivative JAX
    refuses anyway)."""
    name = eqn.primitive.name
    if name in CALLS:
        return list(evaluate_closed(sub_jaxpr(eqn), invals))
    if name in REMAT:
        body = eqn.params["jaxpr"]
        return list(jax.checkpoint(
            lambda *a: evaluate_closed(body, list(a)),
            prevent_cse=eqn.params.get("prevent_cse", True),
            policy=eqn.params.get("policy"),
        )(*invals))
    if name == "cond":
        branches = [
            functools.partial(lambda br, *ops: evaluate_closed(br, list(ops)), br)
            for br in eqn.params["branches"]
        ]
        return list(jax.lax.switch(invals[0], branches, *invals[1:]))
    if name == "scan":
        p = eqn.params
        nc, nk = p["num_consts"], p["num_carry"]
        consts, init, xs = invals[:nc], invals[nc : nc + nk], invals[nc + nk :]

        def step(carry, x):
            outs = evaluate_closed(p["jaxpr"], [*consts, *carry, *x])
            return list(outs[:nk]), list(outs[nk:])

        carry, ys = jax.lax.scan(
            step, list(init), list(xs), length=p["length"], reverse=p["reverse"], unroll=p["unroll"]
        )
        return [*carry, *ys]
    return None


class Traced(NamedTuple):
    """``f(x, *args, **kwargs)`` as a program: ``closed`` takes ``dyn`` (the dynamic leaves of
    ``(x, args, kwargs)``), of which those at ``x_positions`` are ``x``'s leaves, in order."""

    closed: Any  # jax.extend.core.ClosedJaxpr
    out_tree: Any  # the structure of f's output
    dyn: list
    x_positions: list[int]

    @property
    def x_mask(self) -> list[bool]:
        """Which inputs of the program are ``x``'s leaves."""
        return [j in self.x_positions for j in range(len(self.dyn))]

    def inputs(self, x_leaves: list) -> list:
        """The program's inputs with ``x``'s leaves replaced by ``x_leaves``."""
        vals = list(self.dyn)
        for j, leaf in zip(self.x_positions, x_leaves):
            vals[j] = leaf
        return vals


def trace(f: Callable, x: Any, args: tuple = (), kwargs: dict | None = None, *,
          named: bool = False) -> Traced:
    """Traces ``f(x, *args, **kwargs)``; every leaf of ``x`` is an input of the program. With
    ``named``, module calls are traced under a tap so that the program names them
    (:func:`module_path`)."""
    if named:
        f = _taps.named(f)
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
