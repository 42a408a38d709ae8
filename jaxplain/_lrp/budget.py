"""``jaxplain.lrp_budget``: where LRP's relevance goes, rule by rule.

LRP starts with ``f(x)`` at the output and hands it back operation by operation; a rule may keep
part of what reaches it (the epsilon rule's bias share and stabilizer, the softmax rule's bias
term, a constant added to or concatenated with the signal: class tokens, position embeddings,
masks). :func:`lrp_budget` measures what every operation keeps, summed by kind, so that

    ``sum(relevance) + sum(absorbed.values()) == f(x)``

holds up to rounding, and a rule that loses or creates relevance shows where. Each operation's
share is ``sum(R at its output) - sum(R handed to its x-dependent inputs)``, read from one extra
scalar input per kind whose cotangent is that sum (no side channels: it composes with ``jit`` and
``vmap``).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxplain import _checks
from jaxplain._contract import Explainer, make_explainer
from jaxplain._interpret import first, interpret
from jaxplain._lrp import api as A
from jaxplain._lrp import composites as K
from jaxplain._lrp import propagate as P

__all__ = ["Budget", "Ledger", "lrp_budget"]

#: The kinds of operation :func:`lrp_budget` reports, in this order.
KINDS = K.KINDS + ("structural", "other")


class Budget(NamedTuple):
    """What :func:`lrp_budget` returns for one example.

    Attributes:
      output: ``f(x)``, the relevance LRP starts with.
      relevance: the relevance of each element of ``x`` (what :func:`jaxplain.lrp` returns).
      absorbed: kind of operation -> the relevance operations of that kind kept (see
        :data:`KINDS`: ``"dense"``/``"conv"`` their biases and stabilizers, ``"softmax"`` its bias
        term, ``"affine"`` added constants such as position embeddings, ``"structural"`` what a
        concatenation gives a constant such as a class token).
    """

    output: Any
    relevance: Any
    absorbed: dict


class Ledger:
    """Hooks that run another hooks object and record, per kind, the relevance each operation
    keeps, as the cotangent of that kind's probe (a scalar input of the program)."""

    def __init__(self, inner, probes: dict):
        self.inner, self.probes = inner, probes

    def _measure(self, kind: str, fn: Callable, args: list, active: list) -> Any:
        probe = self.probes.get(kind, self.probes["other"])

        @jax.custom_vjp
        def measured(p, *a):
            return fn(*a)

        def fwd(p, *a):
            return fn(*a), a

        def bwd(a, r):
            _, vjp = jax.vjp(fn, *a)
            cts = vjp(r)
            out = sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(r))
            kept = out - sum((jnp.sum(c) for c, on in zip(cts, active) if on), jnp.zeros((), jnp.result_type(out)))
            return (kept.astype(probe.dtype), *cts)

        measured.defvjp(fwd, bwd)
        return measured(probe, *args)

    def region(self, site, g, root, consts):
        def fn(r, *c):
            return first(self.inner.region(site, g, r, list(c)))

        return self._measure(site.kind, fn, [root, *consts], [True] + [False] * len(consts))

    def layer(self, site, lin, x, w, b):
        def fn(x, w, *bias):
            return self.inner.layer(site, lin, x, w, bias[0] if bias else None)

        args = [x, w] + ([] if b is None else [b])
        return self._measure(site.kind, fn, args, [True] + [False] * (len(args) - 1))

    def op(self, site, fn, invals, active):
        return [self._measure(site.kind, lambda *a: first(self.inner.op(site, fn, list(a), active)), invals, active)]

    def structural(self, site, fn, invals, active):
        inner = getattr(self.inner, "structural", None)
        call = (lambda *a: inner(site, fn, list(a), active)) if inner is not None else (lambda *a: fn(*a))
        return self._measure("structural", lambda *a: list(call(*a)), invals, active)


def _budget(method: str, f: Callable, composite: K.Composite) -> Callable:
    f_checked = _checks.scalar_output(method, f)

    def core(x, *args, **kwargs):
        program = interpret(f_checked, x, args, kwargs, softmax=True)
        A._check_paths(method, composite, program)
        layers = tuple(kind for kind, _ in program.layers())
        hooks = P.LRPHooks(P.Context(method, composite, layers))
        leaves, tree = jax.tree_util.tree_flatten(x)
        dtype = jnp.result_type(*leaves)
        probes = {k: jnp.zeros((), dtype) for k in KINDS}

        def run(leaves, probes):
            return program.run(Ledger(hooks, probes))(leaves)

        y, vjp = jax.vjp(run, leaves, probes)
        rel, absorbed = vjp(y)
        relevance = jax.tree_util.tree_unflatten(tree, [r.astype(l.dtype) for r, l in zip(rel, leaves)])
        return Budget(y, relevance, absorbed)

    return core


def lrp_budget(f: Callable, *, rules: Any = None) -> Explainer:
    """LRP with its books: the relevance of ``x`` and what every kind of operation kept.

    Runs :func:`jaxplain.lrp` with the same rules and returns a :class:`Budget`: ``f(x)``, the
    relevance of ``x`` (equal to ``jaxplain.lrp``'s) and ``absorbed``, per kind of operation, the
    relevance its rules kept. Their sum closes the books: ``sum(relevance) + sum(absorbed) ==
    f(x)`` up to rounding. Use it to see why relevance is not conserved (biases, the softmax
    rule's bias term under AttnLRP, a class token or position embedding) and how large the input's
    share ``sum(relevance) / f(x)`` is.

    Args:
      f: ``f(x, *args) -> scalar`` for one example.
      rules: as for :func:`jaxplain.lrp` (a composite or one rule; default
        ``jaxplain.composites.epsilon_plus_flat()``).

    Returns:
      ``explain(x, *args) -> Budget(output, relevance, absorbed)``; composes with ``jax.jit`` and
      ``jax.vmap``.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> w = jnp.array([[1.0, -1.0], [2.0, 1.0]]); b = jnp.array([1.0, 0.0])
      >>> f = lambda x: jnp.sum(jnp.maximum(x @ w + b, 0))
      >>> out = jx.lrp_budget(f, rules=jx.rules.zero)(jnp.array([1.0, 1.0]))
      >>> [round(float(v), 4) for v in (out.output, out.relevance.sum(), out.absorbed["dense"])]
      [4.0, 3.0, 1.0]

    References:
      Montavon, Binder, Lapuschkin, Samek & Müller (2019), "Layer-Wise Relevance Propagation: An
      Overview" (conservation, and what biases absorb); Achtibat et al. (2024), "AttnLRP:
      Attention-Aware Layer-Wise Relevance Propagation for Transformers", ICML (the softmax rule's
      bias term).
    """
    _checks.check_callable("lrp_budget", "f", f)
    composite = A.resolve_rules("lrp_budget", K.epsilon_plus_flat() if rules is None else rules)
    bounds = A._zbox_bounds(composite)
    return make_explainer(
        "lrp_budget",
        f,
        _budget("lrp_budget", f, composite),
        {"rules": composite if rules is None else rules},
        check=lambda x: A._check_bounds("lrp_budget", bounds, x),
    )
