"""The interpreter: ``f``'s program evaluated again, each class of operation through a hook.

:func:`program` traces ``f`` once (per compilation); :meth:`Program.run` returns a function of
``x``'s leaves that evaluates the program with a :class:`Hooks`. The forward values are those of
``f``; what a hook changes is the backward pass, by wrapping the operation in
:func:`with_backward` (a ``jax.custom_vjp``). LRP gives every class its rule, DeepLIFT gives
activations and max pooling the rescale rule; :class:`Plain` changes nothing.

The classes (:mod:`jaxplain._interpret.analysis`): elementwise regions go to ``Hooks.region``
(``kind`` ``"activation"`` or ``"affine"``), dense and convolution layers with their biases to
``Hooks.layer``, and sums, means, average pooling, maxima and anything else that touches ``x`` to
``Hooks.op`` (``kind`` ``"sum"``, ``"avg_pool"``, ``"max_pool"`` or ``"other"``). Shape-only
operations keep their ordinary backward pass; calls and checkpoints are entered.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain._interpret import analysis as A
from jaxplain._interpret import patterns as PT
from jaxplain._interpret import program as P

__all__ = ["Hooks", "Plain", "Program", "Site", "first", "program", "with_backward"]


class Site(NamedTuple):
    """One operation the interpreter hands to a hook.

    Attributes:
      kind: ``"dense"``, ``"conv"``, ``"activation"``, ``"affine"``, ``"sum"``, ``"avg_pool"``,
        ``"max_pool"``, ``"softmax"`` or ``"other"``.
      eqn: the equation (for a region, its last; for a mean, its sum or pooling window).
      path: its module path (``""`` if none), as :func:`jaxplain.layers` names modules.
      index: its place among the sites of its hook (layers, regions, ops), in evaluation order.
      what: for ``"other"``, why it is none of the known classes.
      nonneg: for a layer, whether its input is known to be >= 0.
      concat: for a layer, the (input axis, weight axis) it contracts, if exactly one pair.
      relu: for an activation region, whether it is exactly one ReLU of its root.
      axes: for a softmax, the axes it normalizes over.
      frozen: for a normalization (kinds ``"layer_norm"``, ``"rms_norm"``), the same function of
        its input with the statistics factor held constant (the identity rule on the division);
        for a softmax, its input laid out as its output (``input -> logits``, moved by transposes).
      weights: for a product, the positions of its operands that are attention weights (a
        softmax's output, through reshapes and transposes).
    """

    kind: str
    eqn: Any
    path: str
    index: int
    what: str = ""
    nonneg: bool = False
    concat: Any = None
    relu: bool = False
    frozen: Any = None
    axes: tuple = ()
    weights: tuple = ()


class Hooks(Protocol):
    """How the interpreter evaluates each class of operation."""

    def region(self, site: Site, g: Callable, root: Any, consts: list) -> Any:
        """``g(root, *consts)``, an elementwise function of one x-dependent value."""

    def layer(self, site: Site, lin: Callable, x: Any, w: Any, b: Any) -> Any:
        """``lin(x, w) + b`` (``b`` None: no bias), a dense or convolution layer."""

    def op(self, site: Site, fn: Callable, invals: list, active: list[bool]) -> list:
        """``fn(*invals)`` (a list of outputs); ``active`` marks the x-dependent inputs."""

    # Optional: ``structural(site, fn, invals, active) -> list`` for shape-only operations
    # (reshape, concatenate, gather...); without it they keep their ordinary backward pass.


class Plain:
    """Hooks that evaluate every operation unchanged."""

    def region(self, site, g, root, consts):
        return g(root, *consts)

    def layer(self, site, lin, x, w, b):
        z = lin(x, w)
        return z if b is None else z + b

    def op(self, site, fn, invals, active):
        return fn(*invals)


def first(v):
    """The single output of an operation given as a list (or the value itself)."""
    return v[0] if isinstance(v, (list, tuple)) else v


def _zero_cotangent(v):
    dtype = jnp.result_type(v)
    if jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.complexfloating):
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


class _Run(NamedTuple):
    hooks: Any
    memo: dict
    counters: dict  # hook name -> itertools.count, shared by every scope of one evaluation


def _evaluate(run: _Run, jaxpr, consts, args, scope: A.Scope, prefix: str = "") -> list:
    env: dict = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    done: dict = {}  # region member -> its value with the region's hook applied
    eqns = jaxpr.eqns

    def count(hook: str) -> int:
        return next(run.counters.setdefault(hook, itertools.count()))

    def region_fn(v):
        region = scope.regions[v]
        members = [eqns[i] for i in region.eqns]

        def g(rv, *cv):
            local = {region.root: rv, **dict(zip(region.consts, cv))}
            for e in members:
                ins = [w.val if not P.is_var(w) else local[w] if w in local else env[w] for w in e.invars]
                local.update(zip(e.outvars, P.bind(e, ins)))
            return local[v]

        return g, region

    def plain(v):
        """A value without hooks: a literal, a computed value, or a region member recomputed."""
        if not P.is_var(v):
            return v.val
        if v not in env:  # a member of an elementwise region, read outside it (a predicate)
            g, region = region_fn(v)
            env[v] = g(read(region.root), *[plain(w) for w in region.consts])
        return env[v]

    def read(v):
        """The value of ``v`` as an operation outside its elementwise region sees it."""
        if not P.is_var(v) or v not in scope.regions or v in scope.flags:
            return plain(v)
        if v not in done:
            g, region = region_fn(v)
            last = eqns[region.eqns[-1]]
            kind = "affine" if region.affine else "activation"
            site = Site(kind, last, P.module_path(prefix, last), count("region"), relu=region.relu)
            consts_v = [plain(w) for w in region.consts]
            done[v] = first(run.hooks.region(site, g, read(region.root), consts_v))
        return done[v]

    for i, (eqn, op) in enumerate(zip(eqns, scope.ops)):
        cls = op.cls
        if cls == "deferred":
            continue
        if cls == "const":
            outs = P.bind(eqn, [plain(v) for v in eqn.invars])
        elif cls == "flag":
            outs = P.bind(eqn, [read(v) for v in eqn.invars])
        elif cls == "layer":
            outs = [_layer(run, eqns, op.detail, read, plain, scope, prefix, count("layer"))]
        elif cls == "mean":
            outs = _mean(run, eqn, eqns[op.detail.total], op.detail.k, read, plain, scope, prefix, count)
        elif cls == "call":
            sub = P.sub_jaxpr(eqn)
            invals = [read(v) for v in eqn.invars]
            outs = _evaluate(run, P.open_jaxpr(sub), P.consts_of(sub), invals, op.detail,
                             P.name_stack(prefix, eqn))
        elif cls == "structural":
            invals = [read(v) for v in eqn.invars]
            hook = getattr(run.hooks, "structural", None)
            if hook is None:
                outs = P.bind(eqn, invals)
            else:
                active = [P.is_var(v) and v in scope.active for v in eqn.invars]
                site = Site("structural", eqn, P.module_path(prefix, eqn), count("structural"))
                outs = hook(site, lambda *a, e=eqn: P.bind(e, list(a)), invals, active)
        elif cls == "softmax":
            outs = _softmax(run, eqns, op.detail, read, prefix, count("op"))
        elif cls == "normalization":
            outs = _normalization(run, eqns, op.detail, read, plain, prefix, count("op"))
        else:  # sum, avg_pool, max_pool, other
            invals = [read(v) for v in eqn.invars]
            active = [P.is_var(v) and v in scope.active for v in eqn.invars]
            site = Site(cls, eqn, P.module_path(prefix, eqn), count("op"), what=op.what,
                        weights=op.detail if cls == "product" else ())
            outs = run.hooks.op(site, lambda *a, e=eqn: P.bind(e, list(a)), invals, active)
        env.update(zip(eqn.outvars, outs))
    return [read(v) for v in jaxpr.outvars]


def _layer(run, eqns, layer: A.Layer, read, plain, scope, prefix, index):
    lin_eqn = eqns[layer.eqn]
    k = layer.k
    xv = read(lin_eqn.invars[k])
    wv = plain(lin_eqn.invars[1 - k])
    bv = None
    if layer.add is not None:
        end = eqns[layer.chain[-1]].outvars[0] if layer.chain else lin_eqn.outvars[0]
        bv = [plain(v) for v in eqns[layer.add].invars if v is not end][0]
    reshapes = [eqns[j] for j in layer.chain]

    def lin(xx, ww):
        z = P.bind(lin_eqn, [xx, ww] if k == 0 else [ww, xx])[0]
        for r_eqn in reshapes:
            z = P.bind(r_eqn, [z])[0]
        return z

    src = lin_eqn.invars[k]
    site = Site(layer.kind, lin_eqn, P.module_path(prefix, lin_eqn), index,
                nonneg=P.is_var(src) and src in scope.nonneg, concat=layer.concat)
    return run.hooks.layer(site, lin, xv, wv, bv)


def _softmax(run, eqns, group: PT.Softmax, read, prefix, index):
    members = [eqns[j] for j in group.members]

    def values(c):
        local = {group.input: c}
        for e in members:
            local.update(zip(e.outvars, P.bind(e, [local[w] if P.is_var(w) else w.val for w in e.invars])))
        return local

    def softmax(c):
        return [values(c)[members[-1].outvars[0]]]

    logits = group.logits if group.logits is not None else group.input
    last = members[-1]
    site = Site("softmax", last, P.module_path(prefix, last), index, what="a softmax", axes=group.axes,
                frozen=lambda c: values(c)[logits])
    return run.hooks.op(site, softmax, [read(group.input)], [True])


def _normalization(run, eqns, group: PT.Normalization, read, plain, prefix, index):
    members = [eqns[j] for j in group.members]
    made = {o for e in members for o in e.outvars}
    outside = {w: plain(w) for e in members for w in e.invars
               if P.is_var(w) and w is not group.input and w not in made}

    def run_members(c, freeze):
        local = {group.input: c, **outside}
        for e in members:
            ins = [local[w] if P.is_var(w) else w.val for w in e.invars]
            if freeze:
                ins = [jax.lax.stop_gradient(v) if w is group.scale else v for w, v in zip(e.invars, ins)]
            local.update(zip(e.outvars, P.bind(e, ins)))
        return [local[members[-1].outvars[0]]]

    last = members[-1]
    kind = "layer_norm" if group.centered else "rms_norm"
    site = Site(kind, last, P.module_path(prefix, last), index, what=f"a {kind.replace('_', ' ')}",
                frozen=lambda c: run_members(c, True))
    return run.hooks.op(site, lambda c: run_members(c, False), [read(group.input)], [True])


def _mean(run, eqn, red, k, read, plain, scope, prefix, count):
    red_ins = [P.is_var(v) and v in scope.active for v in red.invars]
    args = [read(v) for v in red.invars] + [plain(eqn.invars[1 - k])]

    def mean(*a):
        total = P.bind(red, list(a[:-1]))[0]
        return P.bind(eqn, [total, a[-1]] if k == 0 else [a[-1], total])

    kind = "avg_pool" if red.primitive.name in A.AVG_POOL else "sum"
    site = Site(kind, red, P.module_path(prefix, red), count("op"))
    return run.hooks.op(site, mean, args, red_ins + [False])


class Program(NamedTuple):
    """``f(x, *args, **kwargs)`` traced to a jaxpr (module calls named), ready to be run.

    ``memo`` caches the analysis of the program and its sub-programs for as long as the program
    lives (one trace): running it, listing its layers and its paths analyze it once."""

    traced: P.Traced
    memo: dict
    softmax: bool = False  # softmaxes as single operations (see analysis.analyze)

    def scope(self) -> A.Scope:
        closed = self.traced.closed
        return A.analyze(closed.jaxpr, self.traced.x_mask, None, self.memo, softmax=self.softmax)

    def run(self, hooks: Hooks) -> Callable:
        """A function of ``x``'s leaves giving ``f``'s output evaluated with ``hooks``; everything
        else ``f`` was called with is fixed."""
        closed, traced = self.traced.closed, self.traced

        def fn(x_leaves):
            run = _Run(hooks, self.memo, {})
            outs = _evaluate(run, closed.jaxpr, closed.consts, traced.inputs(x_leaves), self.scope())
            return jax.tree_util.tree_unflatten(traced.out_tree, outs)

        return fn

    def layers(self) -> list[tuple[str, str]]:
        """``(kind, module path)`` of every dense/convolution layer, in evaluation order (the
        order of ``Site.index`` for ``Hooks.layer``)."""
        out: list = []
        _walk(self.traced.closed.jaxpr, self.scope(), "", out, None)
        return out

    def paths(self) -> list[str]:
        """The module paths of the operations that touch ``x``, each once, in program order."""
        out: list = []
        _walk(self.traced.closed.jaxpr, self.scope(), "", None, out)
        return list(dict.fromkeys(p for p in out if p))


def _walk(jaxpr, scope: A.Scope, prefix: str, layers: list | None, paths: list | None) -> None:
    for eqn, op in zip(jaxpr.eqns, scope.ops):
        if op.cls == "call":
            sub = P.open_jaxpr(P.sub_jaxpr(eqn))
            _walk(sub, op.detail, P.name_stack(prefix, eqn), layers, paths)
            continue
        if op.cls == "layer" and layers is not None:
            lin = jaxpr.eqns[op.detail.eqn]
            layers.append((op.detail.kind, P.module_path(prefix, lin)))
        if paths is not None and any(P.is_var(v) and v in scope.active for v in eqn.invars):
            paths.append(P.module_path(prefix, eqn))


def program(f: Callable, x: Any, args: tuple = (), kwargs: dict | None = None, *,
            softmax: bool = False) -> Program:
    """Traces ``f(x, *args, **kwargs)`` for the interpreter; with ``softmax``, each softmax is one
    operation (``Site.kind == "softmax"``) for the hooks."""
    return Program(P.trace(f, x, args, kwargs, named=True), {}, softmax)
