"""Functions the interpreter recognises in a program by their spelling: a softmax (as
``jax.nn.softmax`` writes it, or ``e / sum(e)`` by hand) and a clamp before a square root (the
``max(var, 0)`` of Flax's LayerNorm, which is not an activation)."""

from __future__ import annotations

from typing import Any, NamedTuple

from jaxplain._interpret import program as P

__all__ = ["Normalization", "Softmax", "feeds_only_a_root", "normalizations", "softmaxes"]


class Softmax(NamedTuple):
    """``exp(c - max c) / sum(exp(c - max c))`` over ``axes`` (or without the shift), spelled by
    the equations ``members`` (indices, in program order; the last is the division)."""

    members: tuple
    input: Any
    axes: tuple
    logits: Any = None  # the softmax's argument as the output is laid out (the input, or moved)


_SHAPES = frozenset("broadcast_in_dim reshape expand_dims".split())


def softmaxes(jaxpr, active, consumers, producer, outs) -> dict:
    """Division index -> :class:`Softmax`, for each ``e / sum(e)`` with ``e = exp(c - shift)``
    (``shift`` a maximum of ``c``, through broadcasts and ``stop_gradient``, or no shift) whose
    intermediate values are read by nothing else."""
    eqns = jaxpr.eqns

    def made_by(v, name):
        j = producer.get(v) if P.is_var(v) else None
        return j if j is not None and eqns[j].primitive.name == name else None

    def through_shapes(v, extra=()):
        chain = []
        j = producer.get(v) if P.is_var(v) else None
        while j is not None and eqns[j].primitive.name in _SHAPES | frozenset(extra):
            chain.append(j)
            v = next(w for w in eqns[j].invars if P.is_var(w))
            j = producer.get(v)
        return v, chain

    found = {}
    for i, eqn in enumerate(eqns):
        if eqn.primitive.name != "div" or not all(P.is_var(v) and v in active for v in eqn.invars):
            continue
        num, den = eqn.invars
        e = made_by(num, "exp")
        total, chain = through_shapes(den)
        j = made_by(total, "reduce_sum")
        if e is None or j is None or eqns[j].invars[0] is not num:
            continue
        axes = tuple(eqns[j].params["axes"])
        members = [e, j, *chain, i]
        c = eqns[e].invars[0]
        d = made_by(c, "sub")
        if d is not None:
            a, shift = eqns[d].invars
            m, shift_chain = through_shapes(shift, ("stop_gradient", "max", "transpose"))
            r = made_by(m, "reduce_max")
            maxes_ok = all(eqns[q].primitive.name != "max" or not all(P.is_var(w) for w in eqns[q].invars)
                           for q in shift_chain)
            # the logits may reach the subtraction transposed (jax.nn.dot_product_attention)
            src, moved = a, []
            while made_by(src, "transpose") is not None and eqns[made_by(src, "transpose")].invars[0] is not None:
                moved.append(made_by(src, "transpose"))
                src = eqns[moved[-1]].invars[0]
            if r is not None and eqns[r].invars[0] is not src:
                src, moved = a, []
            same = (not moved and tuple(eqns[r].params["axes"]) == axes) if r is not None else False
            if r is not None and eqns[r].invars[0] is src and maxes_ok and (same or moved):
                c, members = src, members + [d, r, *shift_chain, *moved]
        group = set(members)
        made = {o for q in group for o in eqns[q].outvars}
        if any(  # each intermediate read only inside, each operand c, a literal or an intermediate
            o in outs or any(u not in group for u in consumers.get(o, []))
            for q in group if q != i for o in eqns[q].outvars
        ) or any(P.is_var(w) and w is not c and w not in made for q in group for w in eqns[q].invars):
            continue
        logits = eqns[d].invars[0] if d is not None and c is not eqns[e].invars[0] else c
        found[i] = Softmax(tuple(sorted(group)), c, axes, logits)
    return found


_ROOTS = frozenset("sqrt rsqrt".split())
_BEFORE_ROOT = frozenset("add convert_element_type broadcast_in_dim reshape".split())


def _from_a_reduction(jaxpr, eqn) -> bool:
    """Whether the clamped value is a statistic: every path back from it through elementwise
    arithmetic and broadcasts ends at a ``reduce_sum`` (a mean of squares, as a variance is)."""
    producer = {o: e for e in jaxpr.eqns for o in e.outvars}
    todo = [w for w in eqn.invars if P.is_var(w)]
    found = False
    while todo:
        e = producer.get(todo.pop())
        if e is None:
            return False  # a program input reached without a reduction
        if e.primitive.name == "reduce_sum":
            found = True
            continue
        if e.primitive.name not in _STAT_OPS:
            return False
        todo.extend(w for w in e.invars if P.is_var(w))
    return found


def feeds_only_a_root(jaxpr, i: int, consumers: dict) -> bool:
    """Whether equation ``i`` clamps a statistic whose only use is a square root (through adding
    constants, casts and broadcasts): ``max(var, 0)`` before ``rsqrt(var + eps)`` (Flax's
    LayerNorm), not an activation."""
    if not _from_a_reduction(jaxpr, jaxpr.eqns[i]):  # sqrt(relu(h)) of an activation stays a ReLU
        return False
    seen, todo = set(), [jaxpr.eqns[i].outvars[0]]
    outs = {v for v in jaxpr.outvars if P.is_var(v)}
    while todo:
        v = todo.pop()
        if v in outs or not consumers.get(v):
            return False
        for j in consumers[v]:
            if j in seen:
                continue
            seen.add(j)
            e = jaxpr.eqns[j]
            if e.primitive.name in _ROOTS or (e.primitive.name == "pow" and not P.is_var(e.invars[1])
                                              and float(e.invars[1].val) < 0):
                continue
            if e.primitive.name not in _BEFORE_ROOT:
                return False
            todo.extend(e.outvars)
    return True


class Normalization(NamedTuple):
    """``y = a * s`` (or ``a / s``) with ``a = c - mean(c)`` (LayerNorm) or ``a = c`` (RMSNorm)
    and ``s`` computed from ``c`` through reductions only (the statistics, e.g.
    ``rsqrt(var + eps) * scale``), spelled by the equations ``members`` (the last is ``y``'s)."""

    members: tuple
    input: Any
    scale: Any  # the variable s, held constant by the identity rule on the division
    centered: bool


_STAT_OPS = frozenset(
    """add sub mul div max min square integer_pow pow rsqrt sqrt neg convert_element_type
    broadcast_in_dim reshape expand_dims squeeze""".split()
)


def _statistic(eqns, producer, active, v):
    """``(equations, reduced values)`` if ``v`` depends on x only through ``reduce_sum``s (their
    operands are the reduced values), else None."""
    members, reduced, todo, seen = set(), set(), [v], set()
    while todo:
        w = todo.pop()
        if not (P.is_var(w) and w in active) or w in seen:
            continue
        seen.add(w)
        j = producer.get(w)
        if j is None:
            return None  # an input of the program, reached without a reduction
        e = eqns[j]
        members.add(j)
        if e.primitive.name == "reduce_sum":
            reduced.add(e.invars[0])
            continue
        if e.primitive.name not in _STAT_OPS:
            return None
        todo.extend(e.invars)
    return members, reduced


def normalizations(jaxpr, active, consumers, producer, outs) -> dict:
    """Last equation's index -> :class:`Normalization`, for each LayerNorm / RMSNorm as Flax
    spells it (and hand-written ones of the same form), with the bias added right after it,
    whose intermediates are read by nothing else."""
    eqns = jaxpr.eqns
    found = {}
    for i, eqn in enumerate(eqns):
        if eqn.primitive.name not in ("mul", "div") or not all(P.is_var(v) and v in active for v in eqn.invars):
            continue
        pairs = [(0, 1), (1, 0)] if eqn.primitive.name == "mul" else [(0, 1)]
        for ia, i_s in pairs:
            a, s = eqn.invars[ia], eqn.invars[i_s]
            stats = _statistic(eqns, producer, active, s)
            if stats is None:
                continue
            members, reduced = stats
            c, centered, extra = a, False, set()
            j = producer.get(a)
            if j is not None and eqns[j].primitive.name == "sub":
                left, mean = eqns[j].invars
                m_stats = _statistic(eqns, producer, active, mean) if P.is_var(mean) and mean in active else (set(), set())
                if m_stats is not None and P.is_var(left) and left in active:
                    c, centered = left, bool(m_stats[0])
                    extra = {j} | m_stats[0]
                    reduced = reduced | m_stats[1]
            # the reductions read c or c squared
            roots = set()
            for r in reduced:
                k = producer.get(r)
                if r is c:
                    roots.add(c)
                elif k is not None and eqns[k].primitive.name in ("square", "integer_pow") and eqns[k].invars[0] is c:
                    roots.add(c)
                    extra.add(k)
                else:
                    roots.add(None)
            if roots != {c}:
                continue
            group, end = members | extra | {i}, i
            users = consumers.get(eqn.outvars[0], [])
            if len(users) == 1 and eqn.outvars[0] not in outs:  # the bias added right after
                e2 = eqns[users[0]]
                if e2.primitive.name == "add" and sum(P.is_var(w) and w in active for w in e2.invars) == 1:
                    group, end = group | {users[0]}, users[0]
            made = {o for q in group for o in eqns[q].outvars}
            if any(o in outs or any(u not in group for u in consumers.get(o, []))
                   for q in group if q != end for o in eqns[q].outvars):
                continue
            if any(P.is_var(w) and w in active and w is not c and w not in made
                   for q in group for w in eqns[q].invars):
                continue
            found[end] = Normalization(tuple(sorted(group)), c, s, centered)
            break
    return found
