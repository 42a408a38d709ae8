"""How rules reach the operations of ``f``: a jaxpr interpreter.

``f`` is traced once per compilation (``jax.make_jaxpr``) and its program evaluated again by
:func:`evaluate`, with every operation that touches ``x`` wrapped in a ``jax.custom_vjp`` whose
backward pass is the operation's rule; the forward values are unchanged. LRP is then one
``jax.vjp`` of that program, started with ``f(x)`` as the output relevance. No hooks, no model
changes, and any function works: Flax Linen or NNX models, plain ``jnp`` code.

The interpreter sorts operations into the kinds of :mod:`jaxplain._lrp.composites`:

* a *layer* is a ``dot_general`` or ``conv_general_dilated`` with one constant operand (the
  weights), fused with the constant added right after it (the bias);
* an *elementwise region* is a group of elementwise operations computing a function of one
  ``x``-dependent value (``jax.nn.gelu`` is nine such operations, ``relu`` one): its kind is
  ``affine`` when every operation is ``+ - * /`` with constants (BatchNorm in inference mode),
  else ``activation``;
* sums of two ``x``-dependent values, reductions and pooling windows, maxima;
* reshapes, slices and other operations that only move values keep their ordinary backward pass.

Whatever is left (products of two ``x``-dependent values, control flow holding ``x``) gets an error
that names the operation, its module path and source line, unless the composite gives a rule for
its primitive name.

The same machinery serves DeepLIFT (:mod:`jaxplain._deeplift`), whose rule for an activation
region needs the region's value at the baseline.
"""

from __future__ import annotations

import collections
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain import _taps
from jaxplain import _jaxpr as J
from jaxplain._jaxpr import bind as _bind
from jaxplain._jaxpr import consts_of as _consts
from jaxplain._jaxpr import is_float as _is_float
from jaxplain._jaxpr import is_zero_literal as _is_zero_literal
from jaxplain._jaxpr import open_jaxpr as _open
from jaxplain._jaxpr import sub_jaxpr as _sub
from jaxplain._jaxpr import is_var as _is_var
from jaxplain._jaxpr import trace as _trace
from jaxplain._lrp import rules as R

__all__ = ["Program", "trace", "stabilized_relevance"]

_CALLS = (*J.CALLS, "custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr")
_REMAT = J.REMAT

# Elementwise primitives (with broadcasting of size-1 dimensions); a region of them computes a
# function of one value, element by element.
_ELEMENTWISE = frozenset(
    """add sub mul div neg max min abs sign exp exp2 log log1p expm1 tanh logistic sin cos tan asin
    acos atan atan2 sinh cosh asinh acosh atanh sqrt rsqrt cbrt pow integer_pow erf erfc erf_inv
    square select_n clamp convert_element_type gt ge lt le eq ne and or not xor is_finite floor
    ceil round nextafter copy copy_p reduce_precision rem square""".split()
)
# Elementwise primitives that keep a region affine (with constants in their other operands).
_AFFINE = frozenset("add sub mul neg convert_element_type copy copy_p reduce_precision".split())
# Operations that only move values: their ordinary backward pass moves relevance the same way.
_STRUCTURAL = frozenset(
    """reshape transpose squeeze expand_dims broadcast_in_dim slice dynamic_slice gather pad
    concatenate rev convert_element_type copy copy_p reduce_precision select_n
    dynamic_update_slice split scatter""".split()
)
_SUMS = frozenset("reduce_sum cumsum".split())
# Shape-only operations a layer's output may pass before its bias is added.
_RESHAPES = frozenset("reshape squeeze expand_dims".split())
_AVG_POOL = frozenset(["reduce_window_sum"])
_MAXIMA = frozenset("reduce_max reduce_min reduce_window_max reduce_window_min cummax cummin".split())


def _source(eqn) -> str:
    try:
        from jax._src import source_info_util

        return source_info_util.summarize(eqn.source_info) or "unknown source"
    except Exception:  # pragma: no cover - private API moved
        return "unknown source"


_TRANSFORM = re.compile(r"^[A-Za-z_]+\(.*\)$")


def _path(prefix: str, eqn) -> str:
    parts = [p for p in (prefix + "/" + str(eqn.source_info.name_stack)).split("/") if p]
    return "/".join(p for p in parts if not _TRANSFORM.match(p))


# --------------------------------------------------------------------------- static analysis


def _elementwise_call(eqn, active_in: list[bool], memo: dict) -> bool:
    """A call whose body maps one x-dependent input to one output of its shape, elementwise."""
    sub = _sub(eqn)
    if sub is None or eqn.primitive.name not in _CALLS or len(eqn.outvars) != 1:
        return False
    key = (id(_open(sub)), tuple(active_in))
    if key not in memo:
        memo[key] = _elementwise_body(_open(sub), active_in, memo)
    return memo[key]


def _elementwise_body(jaxpr, active_in: list[bool], memo: dict) -> bool:
    # x-dependent inputs of one shape (with predicates, as in jnp.where); that they are functions
    # of one value is the caller's check (the region's root)
    floats = [v for v, a in zip(jaxpr.invars, active_in) if a and _is_float(v)]
    if not floats or len(jaxpr.outvars) != 1 or len({v.aval.shape for v in floats}) != 1:
        return False
    root = floats[0]
    active = {v for v, a in zip(jaxpr.invars, active_in) if a}
    for eqn in jaxpr.eqns:
        ins = [_is_var(v) and v in active for v in eqn.invars]
        if not any(ins):
            continue
        if not _is_elementwise(eqn, ins, memo):
            return False
        for o in eqn.outvars:
            if getattr(o.aval, "shape", None) != root.aval.shape:
                return False
            active.add(o)
    out = jaxpr.outvars[0]
    return _is_var(out) and out in active and out.aval.shape == root.aval.shape


def _is_elementwise(eqn, active_in: list[bool], memo: dict) -> bool:
    if eqn.primitive.name in _ELEMENTWISE:
        return len(eqn.outvars) == 1
    return _elementwise_call(eqn, active_in, memo)


def _is_relu(eqn, active_in, memo) -> bool:
    """``max(v, 0)`` or a call whose body is exactly that (``jax.nn.relu``)."""
    if eqn.primitive.name == "max" and len(eqn.invars) == 2:
        return any(_is_zero_literal(eqn.invars[1 - k]) and active_in[k] for k in (0, 1))
    sub = _sub(eqn)
    if sub is not None and eqn.primitive.name in _CALLS and len(eqn.invars) == 1:
        body = _open(sub)
        return len(body.eqns) == 1 and _is_relu(body.eqns[0], [True] * len(body.eqns[0].invars), memo) and (
            body.eqns[0].invars[0] is body.invars[0] or body.eqns[0].invars[1] is body.invars[0]
        )
    return False


class _Scope:
    """What one jaxpr looks like from x's side: which values depend on x, elementwise regions,
    layers fused with their biases."""

    def __init__(self, jaxpr, active_in: list[bool], memo: dict):
        self.jaxpr = jaxpr
        self.active: set = {v for v, a in zip(jaxpr.invars, active_in) if a and _is_float(v)}
        self.root: dict = {}  # region member var -> the region's root var
        self.member_eqn: dict = {}  # region member var -> index of the eqn producing it
        self.fuse: dict[int, int] = {}  # layer eqn index -> the bias add's index
        self.fused_add: dict[int, int] = {}  # bias add index -> layer eqn index
        self.chain: dict[int, list] = {}  # bias add index -> reshapes between layer and add
        self.skip: set = set()  # those reshapes: part of the layer; sums that are part of a mean
        self.mean: dict[int, int] = {}  # the scale of a mean -> its sum
        self.flags: set = set()  # non-float region members (predicates computed from x)
        consumers = collections.defaultdict(list)
        for i, eqn in enumerate(jaxpr.eqns):
            for v in eqn.invars:
                if _is_var(v):
                    consumers[v].append(i)
        outs = {v for v in jaxpr.outvars if _is_var(v)}
        producer = {o: i for i, eqn in enumerate(jaxpr.eqns) for o in eqn.outvars}
        for i, eqn in enumerate(jaxpr.eqns):
            ins = [_is_var(v) and v in self.active for v in eqn.invars]
            # comparisons of a region's values (the predicate of a jnp.where) belong to the region:
            # DeepLIFT recomputes the whole region at the baseline, predicates included
            flags = [_is_var(v) and v in self.flags for v in eqn.invars]
            if not any(ins) and not any(flags):
                continue
            for o in eqn.outvars:
                if _is_float(o) and any(ins):
                    self.active.add(o)
            if len(eqn.outvars) != 1 or not _is_float(eqn.outvars[0]) or not any(ins):
                # a predicate, or a value computed from predicates only (x > 0 cast to float)
                out = eqn.outvars[0] if len(eqn.outvars) == 1 else None
                if out is not None and _is_elementwise(eqn, [a or b for a, b in zip(ins, flags)], memo):
                    roots = {self.root.get(v, v) for v, a in zip(eqn.invars, ins) if a}
                    roots |= {self.root[v] for v, b in zip(eqn.invars, flags) if b}
                    if len(roots) == 1 and out.aval.shape == next(iter(roots)).aval.shape:
                        self.root[out] = next(iter(roots))
                        self.member_eqn[out] = i
                        self.flags.add(out)
                continue
            if not any(ins):
                continue
            out = eqn.outvars[0]
            if _layer_operand(eqn, ins) is not None:
                # the bias: a constant added right after the layer, maybe after reshapes
                users, v, chain = consumers.get(out, []), out, []
                while (
                    len(users) == 1
                    and v not in outs
                    and jaxpr.eqns[users[0]].primitive.name in _RESHAPES
                    and len(jaxpr.eqns[users[0]].invars) == 1
                ):
                    chain.append(users[0])
                    v = jaxpr.eqns[users[0]].outvars[0]
                    users = consumers.get(v, [])
                if len(users) == 1 and v not in outs:
                    add = jaxpr.eqns[users[0]]
                    other = [u for u in add.invars if u is not v]
                    if (
                        add.primitive.name == "add"
                        and len(other) == 1
                        and not (_is_var(other[0]) and _depends(other[0], jaxpr, i, users[0], self))
                    ):
                        self.fuse[i] = users[0]
                        self.fused_add[users[0]] = i
                        self.chain[users[0]] = chain
                        self.skip.update(chain)
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
                    and jaxpr.eqns[j].primitive.name in _SUMS | _AVG_POOL
                    and len(consumers.get(src, [])) == 1
                    and src not in outs
                    and out.aval.shape == src.aval.shape
                ):
                    self.mean[i] = j
                    self.skip.add(j)
                    continue
            if i in self.fused_add or not _is_elementwise(eqn, ins, memo):
                continue
            roots = {self.root.get(v, v) for v, a in zip(eqn.invars, ins) if a}
            roots |= {self.root[v] for v, b in zip(eqn.invars, flags) if b}
            if len(roots) == 1:
                (r,) = roots
                if out.aval.shape == r.aval.shape:
                    self.root[out] = r
                    self.member_eqn[out] = i


def _depends(v, jaxpr, lo: int, hi: int, scope: _Scope) -> bool:
    """Whether ``v`` (defined anywhere before eqn ``hi``) depends on x; values defined between
    ``lo`` and ``hi`` are not classified yet, so look at what they are computed from."""
    if v in scope.active:
        return True
    for eqn in jaxpr.eqns[lo + 1 : hi]:
        if v in eqn.outvars:
            return any(_is_var(u) and _depends(u, jaxpr, lo, hi, scope) for u in eqn.invars)
    return False


def _layer_operand(eqn, ins: list[bool]) -> int | None:
    """The position of the x-dependent operand if ``eqn`` is a dense/convolution layer."""
    name = eqn.primitive.name
    if name == "dot_general" and sum(ins) == 1:
        return ins.index(True)
    if name == "conv_general_dilated" and ins == [True, False]:
        return 0
    return None


def _contracted_axes(eqn, k: int):
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


# --------------------------------------------------------------------------- rule application


def _zero_cotangent(v):
    if jnp.issubdtype(jnp.result_type(v), jnp.floating) or jnp.issubdtype(jnp.result_type(v), jnp.complexfloating):
        return jnp.zeros_like(v)
    return np.zeros(jnp.shape(v), dtype=jax.dtypes.float0)


def with_backward(fn: Callable, backward: Callable, args: list) -> Any:
    """``fn(*args)`` whose backward pass is ``backward(args, out, R) -> cotangents`` (one per arg;
    None for a zero cotangent). Every operand is an argument (not closed over), so explanations
    stay differentiable with respect to parameters."""

    @jax.custom_vjp
    def op(*a):
        return fn(*a)

    def fwd(*a):
        out = fn(*a)
        return out, (a, out)

    def bwd(res, r):
        a, out = res
        cts = backward(list(a), out, r)
        return tuple(_zero_cotangent(x) if c is None else c.astype(jnp.result_type(x)) for x, c in zip(a, cts))

    op.defvjp(fwd, bwd)
    return op(*args)


def stabilized_relevance(r, z, stabilizer):
    """``r / stab(z)``."""
    return r / R.stabilize(z, stabilizer)


def _sum_to(r, shape):
    """``r`` summed over the axes it was broadcast along to match ``shape``."""
    if r.shape == tuple(shape):
        return r
    lead = r.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and r.shape[i + lead] != 1)
    return jnp.sum(r, axis=axes, keepdims=False).reshape(shape) if axes else r.reshape(shape)


# Share convolutions between linear branches (see layer_backward); the tests switch it off to
# check that both ways give the same relevance.
SHARE_LINEAR = True


def layer_backward(rule: R.Rule, lin: Callable, x, w, b, z, r, *, nonneg: bool, concat=None):
    """Relevance at a layer's input: the rule's branches (see :mod:`jaxplain._lrp.rules`).

    ``concat = (input axis, weight axis)``, the axes the layer contracts, lets branches of one
    group that need their own weights (z^B's ``W``, ``W+``, ``W-``) run as one operation on
    inputs and weights concatenated along them: one wide convolution instead of several narrow
    ones (the first layer's three input channels are where XLA:CPU is slowest).

    Branches whose weight modifier is linear in ``(W, W+)`` (its ``linear`` attribute) share work:
    per distinct input, the forward pass needs ``inp W`` (free when ``inp`` is the layer's own
    input: ``z - b``) and ``inp W+`` once, and the backward pass two transposed operations whatever
    the number of branches. Other modifiers get a forward and a transpose of their own.
    """
    opts = dict(rule.options)
    inputs: dict = {}  # input key -> modified input

    def modified(kind):
        key = "x" if kind == "x" or (kind == "pos" and nonneg) else kind
        if key not in inputs:
            if key == "x":
                inputs[key] = x
            elif key == "pos":
                inputs[key] = jnp.maximum(x, 0)
            elif key == "neg":
                inputs[key] = jnp.minimum(x, 0)
            elif key == "ones":
                inputs[key] = jnp.ones_like(x)
            else:
                inputs[key] = jnp.broadcast_to(jnp.asarray(opts[key], x.dtype), x.shape)
        return key, inputs[key]

    w_pos = None
    basis: dict = {}  # (input key, "W" or "P") -> inp W or inp W+

    def base(key, inp, which):
        nonlocal w_pos
        if (key, which) not in basis:
            if which == "W":
                basis[key, which] = z - b if key == "x" and b is not None else z if key == "x" else lin(inp, w)
            else:
                if w_pos is None:
                    w_pos = jnp.maximum(w, 0)
                basis[key, which] = lin(inp, w_pos)
        return basis[key, which]

    # Per input, share work between linear branches only where that needs fewer operations.
    live = [
        (br, modified(br.input)[0])
        for group in rule.groups
        for br in group.branches
        if not (br.input == "neg" and nonneg)  # min(x, 0) = 0: the branch adds nothing
    ]
    shared = {}
    for key in {k for _, k in live}:
        mine = [br for br, k in live if k == key]
        own = [br for br in mine if not (key == "x" and br.weight is R._identity and br.bias is R._identity)]
        if any(getattr(br.weight, "linear", None) is None for br in own):
            shared[key] = False
            continue
        needs = {"W" for br in mine if br.weight.linear[0]} | {"P" for br in mine if br.weight.linear[1]}
        fwd = len(needs - ({"W"} if key == "x" else set()))
        shared[key] = SHARE_LINEAR and fwd + len(needs) < 2 * len(own) + (len(mine) - len(own))

    # forward: every branch's output, group by group
    plans = []  # per group: (G, [(key, inp, weight fn, coef)])
    for group in rule.groups:
        members, zsum, own = [], None, []
        for br in group.branches:
            if br.input == "neg" and nonneg:
                continue
            key, inp = modified(br.input)
            lin_form = getattr(br.weight, "linear", None) if shared[key] else None
            if key == "x" and br.weight is R._identity and br.bias is R._identity:
                zb = z  # the layer itself
            elif lin_form is not None:
                a, c = lin_form
                zb = 0
                if a:
                    zb = zb + a * base(key, inp, "W")
                if c:
                    zb = zb + c * base(key, inp, "P")
                if br.bias is not None and b is not None:
                    zb = zb + br.bias(b)
            else:
                own.append((inp, br.weight(w), br.z_sign))
                if br.bias is not None and b is not None:
                    zb = br.z_sign * br.bias(b)
                    zsum = zb if zsum is None else zsum + zb
                members.append((key, inp, br.weight, br.coef, shared[key]))
                continue
            zb = br.z_sign * zb
            zsum = zb if zsum is None else zsum + zb
            members.append((key, inp, br.weight, br.coef, shared[key]))
        if own:
            if concat is not None and len(own) > 1:
                zb = lin(
                    jnp.concatenate([i for i, _, _ in own], axis=concat[0]),
                    jnp.concatenate([sg * wt for _, wt, sg in own], axis=concat[1]),
                )
            else:
                zb = sum(sg * lin(i, wt) for i, wt, sg in own)
            zsum = zb if zsum is None else zsum + zb
        if not members:
            continue
        plans.append((zsum, group.where, members))

    masks = {"positive": lambda: z > 0, "negative": lambda: z < 0}
    wheres = [where for _, where, _ in plans]
    if len(plans) > 1 and None not in wheres and len(set(wheres)) == len(wheres):
        # Groups on disjoint parts of the output (gamma): one relevance ratio G, selected per
        # output from its group's denominator; each cotangent is G times a per-output factor.
        # One pass over the outputs instead of one per group (memory traffic, not arithmetic,
        # dominates these elementwise steps on CPU).
        selected, inside = plans[-1][0], masks[plans[-1][1]]()
        for zsum, where, _ in reversed(plans[:-1]):
            m = masks[where]()
            selected, inside = jnp.where(m, zsum, selected), inside | m
        big_g = jnp.where(inside, stabilized_relevance(r, selected, rule.stabilizer), 0)
        scaled = [(big_g, masks[where](), members) for _, where, members in plans]
    else:
        scaled = []
        for zsum, where, members in plans:
            g = stabilized_relevance(r, zsum, rule.stabilizer)
            if where is not None:
                g = jnp.where(masks[where](), g, 0)
            scaled.append((g, None, members))

    # backward: cotangents gathered per (input, W / W+), one transpose each
    cot: dict = {}
    generic = []
    for g, mask, members in scaled:
        mine = []
        for key, inp, weight, coef, share in members:
            lin_form = getattr(weight, "linear", None) if share else None
            if lin_form is None:
                mine.append((inp, weight(w), coef))
                continue
            a, c = lin_form
            for which, k in (("W", a), ("P", c)):
                if k:
                    if mask is None:
                        term = (coef * k) * g
                    else:  # a per-output factor; times the shared G below
                        term = jnp.where(mask, coef * k, 0.0).astype(g.dtype)
                    cot[key, which] = cot.get((key, which), 0) + term
        if mine:
            generic.append((g if mask is None else jnp.where(mask, g, 0), mine))
    if scaled and scaled[0][1] is not None:
        cot = {kw: scaled[0][0] * factor for kw, factor in cot.items()}
    total = None

    def transpose(inp, weight, g):
        (t,) = jax.linear_transpose(lambda xx: lin(xx, weight), inp)(g)
        return t

    grads: dict = {}
    for (key, which), g in cot.items():
        if which == "P" and w_pos is None:
            w_pos = jnp.maximum(w, 0)
        t = transpose(inputs[key], w if which == "W" else w_pos, g)
        grads[key] = t if key not in grads else grads[key] + t
    for key, t in grads.items():
        part = inputs[key] * t
        total = part if total is None else total + part
    for g, mine in generic:
        if concat is not None and len(mine) > 1:
            t = transpose(
                jnp.concatenate([i for i, _, _ in mine], axis=concat[0]),
                jnp.concatenate([wt for _, wt, _ in mine], axis=concat[1]),
                g,
            )
            sizes = np.cumsum([i.shape[concat[0]] for i, _, _ in mine])[:-1]
            ts = jnp.split(t, sizes, axis=concat[0])
        else:
            ts = [transpose(i, wt, g) for i, wt, _ in mine]
        for (inp, _, coef), t in zip(mine, ts):
            part = coef * inp * t
            total = part if total is None else total + part
    return jnp.zeros_like(x) if total is None else total


class LRPError(ValueError):
    pass


class Context:
    """The state of one interpretation: the composite, layer positions, the mode."""

    def __init__(self, method: str, composite, plan: bool, layers: list | None = None):
        self.method = method
        self.composite = composite
        self.plan = plan
        self.layers = layers if layers is not None else []  # kinds, in program order (plan)
        self.counter = 0
        self.memo: dict = {}
        if not plan:
            kinds = self.layers
            convs = [i for i, k in enumerate(kinds) if k == "conv"]
            self.last_conv = convs[-1] if convs else -1
            self.first_of = {k: kinds.index(k) for k in ("conv", "dense") if k in kinds}

    def position(self, index: int, kind: str) -> frozenset:
        if self.plan:
            return frozenset()
        tags = set()
        if index == 0:
            tags.add("first")
        if self.first_of.get(kind) == index:
            tags.add(f"first_{kind}")
        if index == len(self.layers) - 1:
            tags.add("last")
        if kind == "dense" and index > self.last_conv:
            tags.add("head")
        return frozenset(tags)

    def rule(self, kind: str, eqn, path: str, position=frozenset(), what: str = "", primitive=None) -> R.Rule:
        primitive = eqn.primitive.name if primitive is None else primitive
        rule = self.composite.rule_for(kind, primitive, path, position)
        where = f"{_source(eqn)}" + (f", module {path!r}" if path else "")
        if rule is None:
            if kind in ("dense", "conv"):
                raise LRPError(
                    f"jaxplain.{self.method}: no rule for the {kind} layer {eqn.primitive.name!r} "
                    f"({where}). Give one: rules=jaxplain.composites.custom(types={{{kind!r}: "
                    f"jaxplain.rules.epsilon}}) or a default=."
                )
            raise LRPError(
                f"jaxplain.{self.method}: no LRP rule for the operation {eqn.primitive.name!r} "
                f"({what or 'its inputs depend on x'}; {where}). Supply one by its name, e.g. "
                f"rules=jaxplain.composites.custom(types={{{eqn.primitive.name!r}: "
                f"jaxplain.rules.gradient}}, ...) for its ordinary backward pass, or "
                f"jaxplain.rules.norm to split relevance in proportion to each input's share."
            )
        R.check_configured(rule, f"jaxplain.{self.method} ({where})")  # a Composite built by hand
        if kind not in ("dense", "conv") and rule.kind == "layer" and rule.modifies_params:
            raise LRPError(
                f"jaxplain.{self.method}: the rule {rule.name!r} changes weights or inputs, so it "
                f"needs a dense or convolution layer, but it was given to a {kind or 'other'} "
                f"operation {eqn.primitive.name!r} ({where}); use jaxplain.rules.norm, epsilon, "
                f"zero, pass_through or gradient there."
            )
        if kind in ("dense", "conv") and rule.kind == "pass":
            raise LRPError(
                f"jaxplain.{self.method}: pass_through cannot be the rule of the {kind} layer at "
                f"{where}: the layer changes the shape of its input. Use a layer rule (epsilon, "
                f"zplus, ...) or jaxplain.rules.gradient."
            )
        return rule


class Rules:
    """How the interpreter applies an elementwise region, a layer and any other operation: for LRP,
    by the composite's rules. DeepLIFT (:mod:`jaxplain._deeplift`) passes hooks of its own."""

    def region(self, ctx: Context, eqn, path: str, kind: str, g: Callable, root_val, consts: list):
        rule = ctx.rule(kind, eqn, path, primitive="")  # a region's rule goes by kind, not by its last op
        return apply_op_rule(ctx, rule, eqn, g, [root_val, *consts], [True] + [False] * len(consts))

    def layer(self, ctx: Context, eqn, path: str, kind: str, lin: Callable, x, w, b, *, nonneg: bool, concat=None):
        index = ctx.counter
        ctx.counter += 1
        if ctx.plan:
            ctx.layers.append(kind)
            z = lin(x, w)
            return z if b is None else z + b
        rule = ctx.rule(kind, eqn, path, ctx.position(index, kind))
        if rule.kind == "gradient":
            z = lin(x, w)
            return z if b is None else z + b

        def fn(x, w, *bias):
            z = lin(x, w)
            return z + bias[0] if bias else z

        def backward(args, z, r):
            x, w, *bias = args
            rin = layer_backward(rule, lin, x, w, bias[0] if bias else None, z, r, nonneg=nonneg, concat=concat)
            return [rin, None] + [None] * len(bias)

        return with_backward(fn, backward, [x, w] + ([] if b is None else [b]))

    def op(self, ctx: Context, eqn, path: str, kind: str, invals: list, active: list[bool], what: str = "", fn=None):
        fn = fn or (lambda *a: _bind(eqn, list(a)))
        if ctx.plan:
            return fn(*invals)
        rule = ctx.rule(kind, eqn, path, what=what)
        return apply_op_rule(ctx, rule, eqn, fn, invals, active)


def apply_op_rule(ctx, rule, eqn, fn, invals, active):
    """Applies a non-layer rule (gradient, pass_through, norm/epsilon/zero) to ``fn(*invals)``."""
    if ctx.plan or rule.kind == "gradient":
        return fn(*invals)
    if rule.kind == "pass":
        idx = [i for i, a in enumerate(active) if a]
        if len(idx) != 1:
            raise LRPError(
                f"jaxplain.{ctx.method}: pass_through needs an operation with one input that "
                f"depends on x, but {eqn.primitive.name!r} ({_source(eqn)}) has {len(idx)}; use "
                f"jaxplain.rules.norm or gradient."
            )
        (k,) = idx

        def backward(args, out, r):
            cts = [None] * len(args)
            cts[k] = _sum_to(_first(r), jnp.shape(args[k]))
            return cts

        return _wrap_multi(fn, backward, invals)

    def backward(args, out, r):
        out, r = _first(out), _first(r)
        g = stabilized_relevance(r, out, rule.stabilizer)
        act = [i for i, a in enumerate(active) if a]
        _, vjp = jax.vjp(lambda *xs: _first(fn(*_put(args, act, xs))), *[args[i] for i in act])
        grads = vjp(g)
        cts = [None] * len(args)
        for i, gi in zip(act, grads):
            cts[i] = args[i] * gi
        return cts

    return _wrap_multi(fn, backward, invals)


def _first(v):
    return v[0] if isinstance(v, (list, tuple)) else v


def _put(args, idx, vals):
    out = list(args)
    for i, v in zip(idx, vals):
        out[i] = v
    return out


def _wrap_multi(fn, backward, invals):
    """``with_backward`` for a ``fn`` that returns a list of one output."""
    out = with_backward(lambda *a: _first(fn(*a)), backward, list(invals))
    return [out]


# --------------------------------------------------------------------------- the interpreter


def evaluate(jaxpr, consts, args, active_in: list[bool], ctx: Context, hooks, prefix: str = "", nonneg_in=None):
    """Evaluates ``jaxpr`` with rules; returns ``(outputs, nonneg flags of the outputs)``."""
    scope = _Scope(jaxpr, active_in, ctx.memo)
    env: dict = {}
    nonneg: set = set()
    done: dict = {}  # region member -> its value with the region's rule applied

    for v, c in zip(jaxpr.constvars, consts):
        env[v] = c
    for i, (v, a) in enumerate(zip(jaxpr.invars, args)):
        env[v] = a
        if nonneg_in is not None and nonneg_in[i]:
            nonneg.add(v)

    def plain(v):
        """A value without rules: a literal, a computed value, or a region member recomputed."""
        if not _is_var(v):
            return v.val
        if v not in env:  # a member of an elementwise region, read outside it (a predicate)
            g, root, consts, _ = _region_fn(v)
            env[v] = g(read(root), *[plain(w) for w in consts])
        return env[v]

    def read(v):
        """The value of ``v`` as an operation outside its elementwise region sees it."""
        if not _is_var(v) or v not in scope.root or v in scope.flags:
            return plain(v)
        if v not in done:
            done[v] = _region(v)
        return done[v]

    def _region_fn(v):
        """``(g, root, consts, eqns)``: ``v = g(root, *consts)`` by the region's operations."""
        root = scope.root[v]
        # the member eqns v depends on, in program order
        need, stack = set(), [v]
        while stack:
            u = stack.pop()
            if u in scope.member_eqn and scope.member_eqn[u] not in need:
                i = scope.member_eqn[u]
                need.add(i)
                stack.extend(w for w in jaxpr.eqns[i].invars if _is_var(w))
        order = sorted(need)
        eqns = [jaxpr.eqns[i] for i in order]
        consts_needed = []
        seen = set()
        for e in eqns:
            for w in e.invars:
                if _is_var(w) and w not in scope.root and w is not root and w not in seen and w not in scope.active:
                    seen.add(w)
                    consts_needed.append(w)

        def g(rv, *cv):
            local = {root: rv, **dict(zip(consts_needed, cv))}
            for e in eqns:
                ins = [w.val if not _is_var(w) else local[w] if w in local else env[w] for w in e.invars]
                for o, val in zip(e.outvars, _bind(e, ins)):
                    local[o] = val
            return local[v]

        return g, root, consts_needed, eqns

    def _region(v):
        g, root, consts_needed, eqns = _region_fn(v)

        def mine(w):  # the region's own value: its root or a member
            return _is_var(w) and (w is root or w in scope.root)

        def positive_literal(w):
            return not _is_var(w) and float(np.min(np.asarray(w.val))) > 0

        # affine: +, -, * with constants only (x * x is not), / by a constant
        affine = all(
            (e.primitive.name in _AFFINE and sum(mine(w) for w in e.invars) <= 1)
            or (e.primitive.name == "div" and mine(e.invars[0]) and not mine(e.invars[1]))
            for e in eqns
        )
        relu = len(eqns) == 1 and _is_relu(eqns[0], [_is_var(w) and (w is root) for w in eqns[0].invars], ctx.memo)
        # a non-negative value scaled by positive literals stays non-negative (average pooling);
        # constants that are arrays have an unknown sign
        scaled = root in nonneg and all(
            (e.primitive.name == "convert_element_type")
            or (e.primitive.name == "mul" and all(mine(w) or positive_literal(w) for w in e.invars))
            or (e.primitive.name == "div" and mine(e.invars[0]) and positive_literal(e.invars[1]))
            for e in eqns
        )
        last = eqns[-1]
        kind = "affine" if affine else "activation"
        out = hooks.region(ctx, last, _path(prefix, last), kind, g, read(root), [plain(w) for w in consts_needed])
        out = _first(out)
        if relu or scaled:
            nonneg.add(v)
        return out

    for i, eqn in enumerate(jaxpr.eqns):
        ins = [_is_var(v) and v in scope.active for v in eqn.invars]
        name = eqn.primitive.name
        if i in scope.fuse or i in scope.skip or (eqn.outvars and eqn.outvars[0] in scope.root):
            continue  # computed later: with its bias / as part of its region
        elif not any(ins):
            outs = _bind(eqn, [plain(v) for v in eqn.invars])
        elif not any(_is_float(o) for o in eqn.outvars):
            # comparisons and other non-float results carry no relevance
            outs = _bind(eqn, [read(v) for v in eqn.invars])
        elif i in scope.fused_add or _layer_operand(eqn, ins) is not None:
            lin_eqn = jaxpr.eqns[scope.fused_add[i]] if i in scope.fused_add else eqn
            lin_ins = [_is_var(v) and v in scope.active for v in lin_eqn.invars]
            k = _layer_operand(lin_eqn, lin_ins)
            xv = read(lin_eqn.invars[k])
            wv = plain(lin_eqn.invars[1 - k])
            if i in scope.fused_add:
                chain = scope.chain.get(i, [])
                end = jaxpr.eqns[chain[-1]].outvars[0] if chain else lin_eqn.outvars[0]
                bv = [plain(v) for v in eqn.invars if v is not end][0]
            else:
                bv = None
            reshapes = [jaxpr.eqns[j] for j in scope.chain.get(i, [])]

            def lin(xx, ww, e=lin_eqn, k=k, reshapes=reshapes):
                z = _bind(e, [xx, ww] if k == 0 else [ww, xx])[0]
                for r_eqn in reshapes:
                    z = _bind(r_eqn, [z])[0]
                return z

            kind = "dense" if lin_eqn.primitive.name == "dot_general" else "conv"
            src = _is_var(lin_eqn.invars[k]) and lin_eqn.invars[k] in nonneg
            outs = [
                hooks.layer(
                    ctx, lin_eqn, _path(prefix, lin_eqn), kind, lin, xv, wv, bv, nonneg=src,
                    concat=_contracted_axes(lin_eqn, k),
                )
            ]
        elif i in scope.mean:
            j = scope.mean[i]
            red = jaxpr.eqns[j]
            k = ins.index(True)
            red_ins = [_is_var(v) and v in scope.active for v in red.invars]
            args = [read(v) for v in red.invars] + [plain(eqn.invars[1 - k])]

            def mean(*a, red=red, eqn=eqn, k=k):
                total = _bind(red, list(a[:-1]))[0]
                return _bind(eqn, [total, a[-1]] if k == 0 else [a[-1], total])

            kind = "avg_pool" if red.primitive.name in _AVG_POOL else "sum"
            outs = hooks.op(ctx, red, _path(prefix, red), kind, args, red_ins + [False], fn=mean)
            scale = eqn.invars[1 - k]
            if red.invars[0] in nonneg and not _is_var(scale) and float(np.min(np.asarray(scale.val))) > 0:
                nonneg.update(eqn.outvars)
        else:
            invals = [read(v) for v in eqn.invars]
            path = _path(prefix, eqn)
            n_act = sum(ins)
            if name in _CALLS and _sub(eqn) is not None or name in _REMAT:
                sub = _sub(eqn)
                flags = [_is_var(v) and v in nonneg for v in eqn.invars]
                outs, out_nonneg = evaluate(
                    _open(sub), _consts(sub), invals, ins, ctx, hooks, prefix=path, nonneg_in=flags
                )
                for o, nn in zip(eqn.outvars, out_nonneg):
                    if nn:
                        nonneg.add(o)
            elif name in _STRUCTURAL:
                outs = _bind(eqn, invals)
                if _keeps_nonneg(eqn, ins, nonneg):
                    nonneg.update(eqn.outvars)
            elif name in ("add", "sub") and n_act == 2:
                outs = hooks.op(ctx, eqn, path, "sum", invals, ins)
            elif name in _SUMS and n_act == 1:
                outs = hooks.op(ctx, eqn, path, "sum", invals, ins)
                if eqn.invars[0] in nonneg:
                    nonneg.update(eqn.outvars)
            elif name in _AVG_POOL and ins[0]:
                outs = hooks.op(ctx, eqn, path, "avg_pool", invals, ins)
                if eqn.invars[0] in nonneg:
                    nonneg.update(eqn.outvars)
            elif name in _MAXIMA or (name in ("max", "min") and n_act == 2):
                outs = hooks.op(ctx, eqn, path, "max_pool", invals, ins)
                if all(not a or v in nonneg for v, a in zip(eqn.invars, ins)):
                    nonneg.update(eqn.outvars)
            else:
                what = (
                    f"{n_act} of its inputs depend on x"
                    if n_act > 1
                    else "it is not a layer, elementwise function, sum or pooling window"
                )
                if name in ("cond", "while", "scan"):
                    what = "control flow holding x; LRP follows straight-line programs"
                outs = hooks.op(ctx, eqn, path, "other", invals, ins, what=what)
        for o, val in zip(eqn.outvars, outs):
            env[o] = val
    outs = [read(v) for v in jaxpr.outvars]
    return outs, [_is_var(v) and v in nonneg for v in jaxpr.outvars]


def _keeps_nonneg(eqn, ins, nonneg) -> bool:
    """Whether a shape-only operation of non-negative inputs is non-negative: every float operand
    is a non-negative input or a literal >= 0 (a constant array's sign is unknown; a gather's
    fill value counts too)."""
    for v, a in zip(eqn.invars, ins):
        if a:
            if v not in nonneg:
                return False
        elif _is_float(v) and (_is_var(v) or float(np.min(np.asarray(v.val))) < 0):
            return False
    fill = eqn.params.get("fill_value")
    return fill is None or float(fill) >= 0


class Program:
    """``f(x, *args, **kwargs)`` traced to a jaxpr, ready to be evaluated with rules.

    ``run(hooks, ctx)`` returns a function of x's leaves giving f's output evaluated with the
    rules; everything else ``f`` was called with is fixed.
    """

    def __init__(self, f: Callable, x, args, kwargs):
        # An NNX model built by jaxplain.flax.from_nnx names its submodules in the program only
        # while a layer tap is active (Linen names them itself).
        token = _taps.NNX_TAP.set(_taps._Tap(None, None))
        try:
            traced = _trace(f, x, args, kwargs)
        finally:
            _taps.NNX_TAP.reset(token)
        self.closed, self.out_tree = traced.closed, traced.out_tree
        self.dyn, self.x_positions = traced.dyn, traced.x_positions

    def run(self, hooks, ctx: Context) -> Callable:
        active = [j in self.x_positions for j in range(len(self.dyn))]

        def fn(x_leaves, dyn=None):
            vals = list(self.dyn if dyn is None else dyn)
            for j, leaf in zip(self.x_positions, x_leaves):
                vals[j] = leaf
            outs, _ = evaluate(self.closed.jaxpr, self.closed.consts, vals, active, ctx, hooks)
            return jax.tree_util.tree_unflatten(self.out_tree, outs)

        return fn


def trace(f, x, args, kwargs) -> Program:
    return Program(f, x, args, kwargs)
