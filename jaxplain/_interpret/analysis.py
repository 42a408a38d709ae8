"""What a program looks like from ``x``'s side: which values depend on ``x``, and what kind of
operation each one is.

* :func:`dependents`: the values computed from ``x`` (forward data flow), the one answer every
  program transform uses (the affine split, the canonizers, the interpreter).
* :func:`relu_operand`, :func:`layer_operand`, :func:`is_elementwise`: what one equation is.
* :func:`analyze`: the classes of every equation of a jaxpr for the interpreter
  (:mod:`jaxplain._interpret.evaluate`), as a :class:`Scope`:

  - a *layer* is a ``dot_general`` or ``conv_general_dilated`` with one constant operand (the
    weights), fused with the constant added right after it (the bias), maybe after reshapes;
  - an *elementwise region* is a group of elementwise operations computing a function of one
    ``x``-dependent value (``jax.nn.gelu`` is nine such operations, ``relu`` one); it is
    ``affine`` when every operation is ``+ - * /`` with constants (BatchNorm in inference mode);
  - a *mean* is a sum or a pooling window followed by a constant scale;
  - calls (``jit``, custom derivatives, checkpoints) are entered; shape-only operations, sums,
    average pooling, maxima and anything else are classes of their own.

  Which values are non-negative (ReLU outputs, and what only moves, pools or positively scales
  them) is found here too: LRP's rules skip work for them.
"""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

import numpy as np

from jaxplain._interpret import patterns as PT
from jaxplain._interpret import program as P

__all__ = [
    "Layer",
    "Mean",
    "Op",
    "Region",
    "Scope",
    "analyze",
    "channel_axes",
    "contracted_axes",
    "dependents",
    "is_elementwise",
    "layer_operand",
    "readers",
    "relu_operand",
]

# Calls whose body the interpreter enters: plain calls, and functions with custom derivatives
# (their rules replace the custom derivative).
ENTERED = (*P.CALLS, "custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr")

# Elementwise primitives (with broadcasting of size-1 dimensions); a region of them computes a
# function of one value, element by element.
ELEMENTWISE = frozenset(
    """add sub mul div neg max min abs sign exp exp2 log log1p expm1 tanh logistic sin cos tan asin
    acos atan atan2 sinh cosh asinh acosh atanh sqrt rsqrt cbrt pow integer_pow erf erfc erf_inv
    square select_n clamp convert_element_type gt ge lt le eq ne and or not xor is_finite floor
    ceil round nextafter copy copy_p reduce_precision rem square""".split()
)
# Elementwise primitives that keep a region affine (with constants in their other operands).
AFFINE = frozenset("add sub mul neg convert_element_type copy copy_p reduce_precision".split())
# Operations that only move values: their ordinary backward pass moves relevance the same way.
STRUCTURAL = frozenset(
    """reshape transpose squeeze expand_dims broadcast_in_dim slice dynamic_slice gather pad
    concatenate rev convert_element_type copy copy_p reduce_precision select_n
    dynamic_update_slice split scatter""".split()
)
SUMS = frozenset("reduce_sum cumsum".split())
# Shape-only operations that keep what their one input is (attention weights stay weights).
_MOVES = frozenset("reshape transpose squeeze expand_dims broadcast_in_dim convert_element_type copy copy_p".split())
# Shape-only operations a layer's output may pass before its bias is added.
RESHAPES = frozenset("reshape squeeze expand_dims".split())
AVG_POOL = frozenset(["reduce_window_sum"])
MAXIMA = frozenset("reduce_max reduce_min reduce_window_max reduce_window_min cummax cummin".split())
CONTROL = ("cond", "while", "scan")
# Products of two x-dependent values (attention's q.k and A.v, gates): their own class.
PRODUCTS = frozenset(["mul", "dot_general"])


# --------------------------------------------------------------------------- data flow


# Primitives whose output carries no derivative of their input.
CUTS = frozenset(["stop_gradient"])


def dependents(jaxpr, active_in: list[bool], *, floats: bool = False) -> set:
    """The variables of ``jaxpr`` computed from its inputs marked in ``active_in`` (with
    ``floats``, only floating values through which derivatives flow count: not a
    ``stop_gradient``'s output, e.g. the class picked by ``argmax(stop_gradient(logits))``)."""
    ok = P.is_float if floats else (lambda v: True)
    active = {v for v, a in zip(jaxpr.invars, active_in) if a and ok(v)}
    for eqn in jaxpr.eqns:
        if floats and eqn.primitive.name in CUTS:
            continue
        if any(P.is_var(v) and v in active for v in eqn.invars):
            active.update(o for o in eqn.outvars if ok(o))
    return active


def readers(jaxpr) -> dict:
    """Variable -> the indices of the equations that read it, in program order."""
    out = collections.defaultdict(list)
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.invars:
            if P.is_var(v):
                out[v].append(i)
    return out


# --------------------------------------------------------------------------- one equation


def relu_operand(eqn) -> int | None:
    """The position of the input if ``eqn`` is a ReLU: ``max(v, 0)`` of a floating ``v`` with a
    literal zero, or a call (``jax.nn.relu``'s ``custom_jvp_call``, a ``jit``) whose program is
    exactly that."""
    name = eqn.primitive.name
    if name == "max" and len(eqn.invars) == 2:
        for k in (0, 1):
            if P.is_zero_literal(eqn.invars[1 - k]) and P.is_float(eqn.invars[k]):
                return k
        return None
    if name in (*P.CALLS, "custom_jvp_call") and len(eqn.invars) == 1 and P.is_float(eqn.invars[0]):
        subs = P.subjaxprs(eqn.params)
        if len(subs) == 1 and _is_relu_program(subs[0]):
            return 0
    return None


def _is_relu_program(jaxpr) -> bool:
    if len(jaxpr.invars) != 1 or len(jaxpr.eqns) != 1 or len(jaxpr.outvars) != 1:
        return False
    eqn = jaxpr.eqns[0]
    k = relu_operand(eqn)
    return k is not None and eqn.outvars[0] is jaxpr.outvars[0] and eqn.invars[k] is jaxpr.invars[0]


def layer_operand(eqn, ins: list[bool]) -> int | None:
    """The position of the x-dependent operand if ``eqn`` is a dense/convolution layer."""
    name = eqn.primitive.name
    if name == "dot_general" and sum(ins) == 1:
        return ins.index(True)
    if name == "conv_general_dilated" and ins == [True, False]:
        return 0
    return None


def contracted_axes(eqn, k: int):
    """(x's axis, the weight's axis) that a layer sums over, if there is exactly one pair."""
    if eqn.primitive.name == "conv_general_dilated":
        p = eqn.params
        if p["feature_group_count"] != 1 or p["batch_group_count"] != 1:
            return None
        dn = p["dimension_numbers"]
        return dn.lhs_spec[1], dn.rhs_spec[1]
    (lc, rc), _ = eqn.params["dimension_numbers"]
    if len(lc) != 1:
        return None
    return (lc[0], rc[0]) if k == 0 else (rc[0], lc[0])


def channel_axes(eqn, k: int):
    """(output channel axis, kernel channel axis) of a layer, or None if not a plain layer."""
    out_nd = len(eqn.outvars[0].aval.shape)
    if eqn.primitive.name == "conv_general_dilated":
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


def is_elementwise(eqn, active_in: list[bool], memo: dict) -> bool:
    """Whether ``eqn`` maps its x-dependent inputs elementwise (a primitive, or a call whose body
    does: ``jax.nn.relu``, ``jax.nn.gelu`` under ``jit``)."""
    if eqn.primitive.name in ELEMENTWISE:
        return len(eqn.outvars) == 1
    sub = P.sub_jaxpr(eqn)
    if sub is None or eqn.primitive.name not in ENTERED or len(eqn.outvars) != 1:
        return False
    key = (id(P.open_jaxpr(sub)), tuple(active_in))
    if key not in memo:
        memo[key] = _elementwise_body(P.open_jaxpr(sub), active_in, memo)
    return memo[key]


def _elementwise_body(jaxpr, active_in: list[bool], memo: dict) -> bool:
    # x-dependent inputs of one shape (with predicates, as in jnp.where); that they are functions
    # of one value is the caller's check (the region's root)
    floats = [v for v, a in zip(jaxpr.invars, active_in) if a and P.is_float(v)]
    if not floats or len(jaxpr.outvars) != 1 or len({v.aval.shape for v in floats}) != 1:
        return False
    shape = floats[0].aval.shape
    active = {v for v, a in zip(jaxpr.invars, active_in) if a}
    for eqn in jaxpr.eqns:
        ins = [P.is_var(v) and v in active for v in eqn.invars]
        if not any(ins):
            continue
        if not is_elementwise(eqn, ins, memo):
            return False
        for o in eqn.outvars:
            if getattr(o.aval, "shape", None) != shape:
                return False
            active.add(o)
    out = jaxpr.outvars[0]
    return P.is_var(out) and out in active and out.aval.shape == shape


# --------------------------------------------------------------------------- a whole scope


class Region(NamedTuple):
    """``value = g(root, *consts)`` by the equations ``eqns`` (indices, in program order)."""

    root: Any
    eqns: tuple
    consts: tuple
    affine: bool  # + - * / with constants only (BatchNorm in inference mode)
    relu: bool  # exactly one ReLU of the root


class Layer(NamedTuple):
    """A dense/convolution layer: equation ``eqn`` with x at operand ``k``, maybe the bias added by
    equation ``add`` after the reshapes ``chain``."""

    eqn: int
    k: int
    add: int | None
    chain: tuple
    kind: str  # "dense" or "conv"
    concat: Any  # contracted_axes


class Mean(NamedTuple):
    """A sum or pooling window (equation ``total``) times a constant (operand ``1 - k``)."""

    total: int
    k: int


class Op(NamedTuple):
    """The class of one equation, for the interpreter.

    ``cls`` is one of ``"deferred"`` (computed with its layer, mean, region or softmax),
    ``"const"`` (no input depends on x), ``"flag"`` (no floating output), ``"layer"``, ``"mean"``,
    ``"call"``, ``"structural"``, ``"sum"``, ``"avg_pool"``, ``"max_pool"``, ``"product"`` (of
    two x-dependent values), ``"softmax"`` and ``"normalization"`` (only when asked for:
    :func:`analyze`'s ``softmax``) or ``"other"`` (``what`` says why)."""

    cls: str
    detail: Any = None
    what: str = ""


class Scope(NamedTuple):
    """:func:`analyze`'s answer for one jaxpr."""

    active: frozenset  # floating values computed from x
    ops: tuple  # an Op per equation
    regions: dict  # region member var -> Region
    flags: frozenset  # non-floating region members (predicates computed from x)
    nonneg: frozenset  # values known to be >= 0
    calls: dict  # eqn index -> the Scope of its body
    weights: frozenset = frozenset()  # a softmax's outputs (attention weights), through reshapes


def analyze(jaxpr, active_in: list[bool], nonneg_in: list[bool] | None, memo: dict, *,
            softmax: bool = False, weights_in: list[bool] | None = None) -> Scope:
    """Classifies every equation of ``jaxpr``; ``active_in`` marks the inputs computed from x,
    ``nonneg_in`` those known to be >= 0. Calls are analyzed too (``memo`` caches bodies). With
    ``softmax``, each softmax (as ``jax.nn.softmax`` spells it: a max shift, ``exp``, a sum and a
    division) is one operation of class ``"softmax"`` instead of its parts, and each LayerNorm /
    RMSNorm (``(c - mean c) * s`` with ``s`` a function of ``c``'s statistics) one of class
    ``"normalization"``; ``weights_in`` marks the inputs that are a softmax's output (a product
    with one has the positions of such operands as its ``Op.detail``)."""
    key = ("scope", id(jaxpr), tuple(active_in), tuple(nonneg_in or ()), softmax, tuple(weights_in or ()))
    if key in memo:
        return memo[key][1]
    active = dependents(jaxpr, active_in, floats=True)
    root: dict = {}  # region member var -> the region's root var
    member_eqn: dict = {}  # region member var -> index of the eqn producing it
    flags: set = set()
    fuse: dict = {}  # layer eqn index -> Layer (fused with a bias add)
    fused_add: dict = {}  # bias add index -> Layer
    skip: set = set()  # reshapes of a fused layer; sums that are part of a mean
    mean: dict = {}  # the scale of a mean -> Mean
    consumers = readers(jaxpr)
    outs = {v for v in jaxpr.outvars if P.is_var(v)}
    producer = {o: i for i, eqn in enumerate(jaxpr.eqns) for o in eqn.outvars}
    softmaxes = PT.softmaxes(jaxpr, active, consumers, producer, outs) if softmax else {}
    norms = PT.normalizations(jaxpr, active, consumers, producer, outs) if softmax else {}
    norms = {i: g for i, g in norms.items() if not set(g.members) & {j for h in softmaxes.values() for j in h.members}}
    grouped = {j for g in (*softmaxes.values(), *norms.values()) for j in g.members}

    def join_region(eqn, i, ins, flag_in, out, as_flag):
        roots = {root.get(v, v) for v, a in zip(eqn.invars, ins) if a}
        roots |= {root[v] for v, b in zip(eqn.invars, flag_in) if b}
        if len(roots) == 1 and out.aval.shape == next(iter(roots)).aval.shape:
            root[out] = next(iter(roots))
            member_eqn[out] = i
            if as_flag:
                flags.add(out)

    for i, eqn in enumerate(jaxpr.eqns):
        if i in grouped or eqn.primitive.name in CUTS:
            continue
        ins = [P.is_var(v) and v in active for v in eqn.invars]
        # comparisons of a region's values (the predicate of a jnp.where) belong to the region:
        # DeepLIFT recomputes the whole region at the baseline, predicates included
        flag_in = [P.is_var(v) and v in flags for v in eqn.invars]
        if not any(ins) and not any(flag_in):
            continue
        if len(eqn.outvars) != 1 or not P.is_float(eqn.outvars[0]) or not any(ins):
            # a predicate, or a value computed from predicates only (x > 0 cast to float)
            if len(eqn.outvars) == 1 and is_elementwise(eqn, [a or b for a, b in zip(ins, flag_in)], memo):
                join_region(eqn, i, ins, flag_in, eqn.outvars[0], True)
            continue
        out = eqn.outvars[0]
        k = layer_operand(eqn, ins)
        if k is not None:
            layer = _fuse_bias(jaxpr, i, k, consumers, outs, active)
            if layer.add is not None:
                fuse[i] = layer
                fused_add[layer.add] = layer
                skip.update(layer.chain)
            continue
        if eqn.primitive.name in ("div", "mul") and sum(ins) == 1:
            # a mean: sum or pooling window, then a constant scale; one operation for the rules,
            # so the stabilizer acts on the mean (as Zennit's Norm on an AvgPool module)
            k = ins.index(True)
            src = eqn.invars[k]
            j = producer.get(src)
            if (
                j is not None
                and (k == 0 or eqn.primitive.name == "mul")
                and jaxpr.eqns[j].primitive.name in SUMS | AVG_POOL
                and len(consumers.get(src, [])) == 1
                and src not in outs
                and out.aval.shape == src.aval.shape
            ):
                mean[i] = Mean(j, k)
                skip.add(j)
                continue
        if i in fused_add or not is_elementwise(eqn, ins, memo):
            continue
        join_region(eqn, i, ins, flag_in, out, False)

    regions = {v: _region(jaxpr, v, root, member_eqn, active, memo) for v in root}
    ops = []
    nonneg = {v for v, n in zip(jaxpr.invars, nonneg_in or ()) if n}
    weights = {v for v, w in zip(jaxpr.invars, weights_in or ()) if w}
    calls: dict = {}
    for i, eqn in enumerate(jaxpr.eqns):
        ins = [P.is_var(v) and v in active for v in eqn.invars]
        name = eqn.primitive.name
        n_act = sum(ins)
        if i in softmaxes:
            op = Op("softmax", softmaxes[i])
            nonneg.update(eqn.outvars)
            weights.update(eqn.outvars)
        elif i in norms:
            op = Op("normalization", norms[i])
        elif i in grouped or i in fuse or i in skip or (eqn.outvars and eqn.outvars[0] in root):
            op = Op("deferred")
        elif not any(ins) or name in CUTS:
            op = Op("const")  # (a stop_gradient's output carries no derivative, so no relevance)
        elif not any(P.is_float(o) for o in eqn.outvars):
            op = Op("flag")  # comparisons and other non-float results carry no relevance
        elif i in fused_add or layer_operand(eqn, ins) is not None:
            if i in fused_add:
                op = Op("layer", fused_add[i])
            else:
                k = layer_operand(eqn, ins)
                kind = "dense" if name == "dot_general" else "conv"
                op = Op("layer", Layer(i, k, None, (), kind, contracted_axes(eqn, k)))
        elif i in mean:
            op = Op("mean", mean[i])
            red = jaxpr.eqns[mean[i].total]
            scale = eqn.invars[1 - mean[i].k]
            if red.invars[0] in nonneg and _positive_literal(scale):
                nonneg.update(eqn.outvars)
        elif (name in ENTERED and P.sub_jaxpr(eqn) is not None) or name in P.REMAT:
            sub = P.open_jaxpr(P.sub_jaxpr(eqn))
            inner = analyze(sub, ins, [P.is_var(v) and v in nonneg for v in eqn.invars], memo,
                            softmax=softmax, weights_in=[P.is_var(v) and v in weights for v in eqn.invars])
            calls[i] = inner
            nonneg.update(o for o, v in zip(eqn.outvars, sub.outvars) if P.is_var(v) and v in inner.nonneg)
            weights.update(o for o, v in zip(eqn.outvars, sub.outvars) if P.is_var(v) and v in inner.weights)
            op = Op("call", inner)
        elif name in PRODUCTS and n_act == 2:
            found = tuple(j for j, v in enumerate(eqn.invars) if P.is_var(v) and v in weights)
            op = Op("product", found, "a product of two x-dependent values")
        elif name in STRUCTURAL:
            op = Op("structural")
            if _keeps_nonneg(eqn, ins, nonneg):
                nonneg.update(eqn.outvars)
            if n_act == 1 and name in _MOVES and any(P.is_var(v) and v in weights for v in eqn.invars):
                weights.update(eqn.outvars)
        elif name in ("add", "sub") and n_act == 2:
            op = Op("sum")
        elif name in SUMS and n_act == 1:
            op = Op("sum")
            if eqn.invars[0] in nonneg:
                nonneg.update(eqn.outvars)
        elif name in AVG_POOL and ins[0]:
            op = Op("avg_pool")
            if eqn.invars[0] in nonneg:
                nonneg.update(eqn.outvars)
        elif name in MAXIMA or (name in ("max", "min") and n_act == 2):
            op = Op("max_pool")
            if all(not a or v in nonneg for v, a in zip(eqn.invars, ins)):
                nonneg.update(eqn.outvars)
        else:
            what = (
                f"{n_act} of its inputs depend on x"
                if n_act > 1
                else "it is not a layer, elementwise function, sum or pooling window"
            )
            if name in CONTROL:
                what = "control flow holding x; the rules follow straight-line programs"
            op = Op("other", None, what)
        ops.append(op)
        # region members are non-negative when their region is a ReLU, or a non-negative root
        # scaled by positive literals (average pooling written by hand)
        for o in eqn.outvars:
            r = regions.get(o)
            if r is not None and o not in flags and (r.relu or _scaled(jaxpr, r, nonneg)):
                nonneg.add(o)
    scope = Scope(frozenset(active), tuple(ops), regions, frozenset(flags), frozenset(nonneg), calls,
                  frozenset(weights))
    memo[key] = (jaxpr, scope)  # keeps the jaxpr alive, so its id is not reused
    return scope


def _fuse_bias(jaxpr, i, k, consumers, outs, active) -> Layer:
    """The layer at equation ``i`` with the bias added right after it (maybe after reshapes)."""
    eqn = jaxpr.eqns[i]
    kind = "dense" if eqn.primitive.name == "dot_general" else "conv"
    plain = Layer(i, k, None, (), kind, contracted_axes(eqn, k))
    out = eqn.outvars[0]
    users, v, chain = consumers.get(out, []), out, []
    while (
        len(users) == 1
        and v not in outs
        and jaxpr.eqns[users[0]].primitive.name in RESHAPES
        and len(jaxpr.eqns[users[0]].invars) == 1
    ):
        chain.append(users[0])
        v = jaxpr.eqns[users[0]].outvars[0]
        users = consumers.get(v, [])
    if len(users) != 1 or v in outs:
        return plain
    add = jaxpr.eqns[users[0]]
    other = [u for u in add.invars if u is not v]
    if (
        add.primitive.name == "add"
        and len(other) == 1
        and not (P.is_var(other[0]) and other[0] in active)
    ):
        return plain._replace(add=users[0], chain=tuple(chain))
    return plain


def _region(jaxpr, v, root: dict, member_eqn: dict, active: set, memo: dict) -> Region:
    r = root[v]
    need, stack = set(), [v]  # the member eqns v depends on
    while stack:
        u = stack.pop()
        if u in member_eqn and member_eqn[u] not in need:
            i = member_eqn[u]
            need.add(i)
            stack.extend(w for w in jaxpr.eqns[i].invars if P.is_var(w))
    order = tuple(sorted(need))
    eqns = [jaxpr.eqns[i] for i in order]
    consts, seen = [], set()
    for e in eqns:
        for w in e.invars:
            if P.is_var(w) and w not in root and w is not r and w not in seen and w not in active:
                seen.add(w)
                consts.append(w)

    def mine(w):  # the region's own value: its root or a member
        return P.is_var(w) and (w is r or w in root)

    # affine: +, -, * with constants only (x * x is not), / by a constant
    affine = all(
        (e.primitive.name in AFFINE and sum(mine(w) for w in e.invars) <= 1)
        or (e.primitive.name == "div" and mine(e.invars[0]) and not mine(e.invars[1]))
        for e in eqns
    )
    relu = len(eqns) == 1 and (k := relu_operand(eqns[0])) is not None and eqns[0].invars[k] is r
    return Region(r, order, tuple(consts), affine, relu)


def _positive_literal(w) -> bool:
    return not P.is_var(w) and float(np.min(np.asarray(w.val))) > 0


def _scaled(jaxpr, region: Region, nonneg) -> bool:
    """A non-negative root scaled by positive literals stays non-negative; constants that are
    arrays have an unknown sign."""
    if region.root not in nonneg:
        return False
    mine = lambda w: P.is_var(w) and (w is region.root or w not in region.consts)
    for i in region.eqns:
        e = jaxpr.eqns[i]
        name = e.primitive.name
        if name == "convert_element_type":
            continue
        if name == "mul" and all(mine(w) or _positive_literal(w) for w in e.invars):
            continue
        if name == "div" and mine(e.invars[0]) and _positive_literal(e.invars[1]):
            continue
        return False
    return True


def _keeps_nonneg(eqn, ins, nonneg) -> bool:
    """Whether a shape-only operation of non-negative inputs is non-negative: every float operand
    is a non-negative input or a literal >= 0 (a constant array's sign is unknown; a gather's
    fill value counts too)."""
    for v, a in zip(eqn.invars, ins):
        if a:
            if v not in nonneg:
                return False
        elif P.is_float(v) and (P.is_var(v) or float(np.min(np.asarray(v.val))) < 0):
            return False
    fill = eqn.params.get("fill_value")
    return fill is None or float(fill) >= 0
