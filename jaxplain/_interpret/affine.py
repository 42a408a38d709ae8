"""The affine input layer of ``f``, split off: ``f(x) = rest(prefix(x))`` with ``prefix`` affine.

Path methods evaluate ``df/dx`` at many points of a line ``x(a) = b + a (x - b)``. Nearly every
model starts with an affine map ``L`` of its input (a convolution or dense layer with its bias, a
normalization with constants, any reshaping), and along a line an affine map needs no
re-evaluation::

    L(x(a)) = L(b) + a L'(x - b)            (L' the linear part of L)
    sum_k w_k df/dx(x(a_k)) = L'^T sum_k w_k d rest/dz (L(x(a_k)))

so ``L`` is evaluated at two points and transposed once instead of once per path point. The first
convolution of an image model is the one that profits most: with 3 input channels its forward
and, above all, its transpose are XLA:CPU's slowest convolution shapes (benchmarks/gradients.py).

:func:`split` finds ``prefix`` by data flow on ``f``'s jaxpr (nothing is assumed about the
model): starting from ``x``, an operation is affine in ``x`` if it is linear in its
``x``-dependent operands (reshapes, slices, pads, sums, concatenations, additions) or multiplies one
``x``-dependent operand by constants (``mul``, ``div`` by a constant, ``dot_general``,
``conv_general_dilated``). The boundary is the set of affine values that anything else reads.
Calls (``jit``) are inlined first; everything else (``custom_jvp`` functions such as
``jax.nn.relu``, control flow, checkpoints) is a boundary.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxplain._interpret import program as J
from jaxplain._interpret.analysis import dependents
from jaxplain._interpret.program import bind as _bind
from jaxplain._interpret.program import is_float as _is_float
from jaxplain._interpret.program import is_var as _is_var
from jaxplain._interpret.program import trace as _trace

__all__ = ["Split", "split"]

# Linear in all their x-dependent operands jointly (integer operands such as indices, and the
# predicate of select_n, cannot depend on x affinely: those make the operation non-affine).
_LINEAR = frozenset(
    """reshape transpose broadcast_in_dim squeeze expand_dims slice rev copy copy_p reduce_sum
    neg concatenate pad dynamic_slice gather select_n reduce_window_sum cumsum add sub add_any
    convert_element_type""".split()  # the last one only to a float that holds every value
)
# Linear in one operand when every other operand is constant.
_BILINEAR = frozenset({"mul", "dot_general", "conv_general_dilated"})
_HEAVY = frozenset({"dot_general", "conv_general_dilated"})


class Split(NamedTuple):
    """``f(x, *args) == rest(prefix(x))`` for fixed ``args``; ``prefix`` is affine in ``x``.

    ``prefix`` maps ``x``'s pytree to a list of arrays (the boundary), ``rest`` maps such a list to
    ``f``'s output.
    """

    prefix: Callable[[Any], list]
    rest: Callable[[list], Any]


def _inline(jaxpr, consts, args):
    """Evaluates ``jaxpr`` with its calls (``jit``) opened, so a re-trace gives a flat program."""

    def step(eqn, invals):
        if eqn.primitive.name in J.CALLS:
            sub = J.sub_jaxpr(eqn)
            return _inline(J.open_jaxpr(sub), J.consts_of(sub), invals)
        return _bind(eqn, invals)

    return J.evaluate(jaxpr, consts, args, step)


def _exact_cast(src, dst) -> bool:
    """Whether every value of float dtype ``src`` is a value of float dtype ``dst``."""
    if src == dst:
        return True
    a, b = jnp.finfo(src), jnp.finfo(dst)
    return b.nmant >= a.nmant and b.maxexp >= a.maxexp and b.minexp <= a.minexp


def _kind(eqn, dependent: list[bool], nonaffine_in: bool) -> str:
    """'C' (independent of x), 'A' (affine in x) or 'N' (anything else) for one operation, given
    which operands depend on x and whether any of them is not affine in x."""
    if not any(dependent):
        return "C"
    if nonaffine_in or not all(_is_float(v) for v in eqn.outvars):
        return "N"
    if any(d and not _is_float(v) for v, d in zip(eqn.invars, dependent)):
        return "N"
    name = eqn.primitive.name
    if name == "convert_element_type" and not _exact_cast(eqn.invars[0].aval.dtype,
                                                          eqn.outvars[0].aval.dtype):
        return "N"  # rounding to a coarser float (bf16, f16, float8 casts) is not affine
    if name == "select_n":  # the predicate is integer/bool: constant or the op is not affine
        return "A" if not dependent[0] else "N"
    if name in _LINEAR:
        return "A"
    if name in _BILINEAR:
        return "A" if sum(dependent) == 1 else "N"
    if name == "div":
        return "A" if dependent == [True, False] else "N"
    return "N"


def split(f: Callable, x: Any, args: tuple = (), kwargs: dict | None = None) -> Split | None:
    """Splits ``f(., *args, **kwargs)`` at its affine input layer, traced at ``x``'s shapes.

    Returns None when no convolution or matrix product is affine in ``x`` (nothing to gain) or
    the program has side effects. Operations independent of ``x`` are evaluated here, once.
    """
    traced = _trace(f, x, args, kwargs)
    closed, dyn, x_positions = traced.closed, traced.dyn, set(traced.x_positions)
    if closed.jaxpr.effects:
        return None
    flat = jax.make_jaxpr(lambda *d: _inline(closed.jaxpr, closed.consts, d))(*dyn)
    jaxpr, consts = flat.jaxpr, flat.consts
    if jaxpr.effects:
        return None
    out_tree = traced.out_tree

    x_mask = [j in x_positions for j in range(len(jaxpr.invars))]
    dep = dependents(jaxpr, x_mask)
    kind: dict = {v: "A" if x else "C" for v, x in zip(jaxpr.invars, x_mask)}
    kind.update((v, "C") for v in jaxpr.constvars)
    eqn_kind = []
    for eqn in jaxpr.eqns:
        ins = [_is_var(v) and v in dep for v in eqn.invars]
        k = _kind(eqn, ins, any(_is_var(v) and kind.get(v) == "N" for v in eqn.invars))
        eqn_kind.append(k)
        for v in eqn.outvars:
            kind[v] = k
    if not any(k == "A" and e.primitive.name in _HEAVY for e, k in zip(jaxpr.eqns, eqn_kind)):
        return None

    boundary: list = []
    seen: set = set()

    def mark(v):
        if _is_var(v) and kind[v] == "A" and v not in seen:
            seen.add(v)
            boundary.append(v)

    for eqn, k in zip(jaxpr.eqns, eqn_kind):
        if k == "N":
            for v in eqn.invars:
                mark(v)
    for v in jaxpr.outvars:
        mark(v)

    # Everything independent of x, once.
    cenv: dict = {}
    for v, c in zip(jaxpr.constvars, consts):
        cenv[v] = c
    for j, v in enumerate(jaxpr.invars):
        if kind[v] == "C":
            cenv[v] = dyn[j]
    read_in = lambda env, v: v.val if not _is_var(v) else env[v]
    for eqn, k in zip(jaxpr.eqns, eqn_kind):
        if k == "C":
            for v, o in zip(eqn.outvars, _bind(eqn, [read_in(cenv, v) for v in eqn.invars])):
                cenv[v] = o
    x_vars = [v for j, v in enumerate(jaxpr.invars) if kind[v] == "A"]

    def run(env, which):
        for eqn, k in zip(jaxpr.eqns, eqn_kind):
            if k == which:
                for v, o in zip(eqn.outvars, _bind(eqn, [read_in(env, v) for v in eqn.invars])):
                    env[v] = o
        return env

    def prefix(xx):
        env = dict(cenv)
        x_leaves = jax.tree_util.tree_leaves(xx)
        env.update(zip(x_vars, x_leaves))
        env = run(env, "A")
        return [env[v] for v in boundary]

    def rest(zs):
        env = dict(cenv)
        env.update(zip(boundary, zs))
        env = run(env, "N")
        return jax.tree_util.tree_unflatten(out_tree, [read_in(env, v) for v in jaxpr.outvars])

    return Split(prefix, rest)
