"""How LRP's rules reach the operations of ``f``: hooks of the shared interpreter.

``f`` is traced once per compilation and its program evaluated again by
:mod:`jaxplain._interpret` with :class:`LRPHooks`: every operation that touches ``x`` is wrapped in
a ``jax.custom_vjp`` whose backward pass is the operation's rule (see
:mod:`jaxplain._lrp.composites` for the kinds and their default rules); the forward values are
unchanged. LRP is then one ``jax.vjp`` of that program, started with ``f(x)`` as the output
relevance. No hooks in the model, no model changes, and any function works: Flax Linen or NNX
models, plain ``jnp`` code.

Whatever the interpreter cannot classify (products of two ``x``-dependent values, control flow
holding ``x``) gets an error that names the operation, its module path and source line, unless the
composite gives a rule for its primitive name.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxplain._interpret import Site, first, program as P, with_backward
from jaxplain._lrp import composites as K
from jaxplain._lrp import rules as R
from jaxplain._lrp.arithmetic import layer_backward, stabilized_relevance, sum_to

__all__ = ["Context", "LRPError", "LRPHooks", "apply_op_rule"]


class LRPError(ValueError):
    pass


class Context(NamedTuple):
    """One LRP interpretation: the method's public name, the composite, and the kinds of the
    program's dense/convolution layers in evaluation order (for the position tags)."""

    method: str
    composite: K.Composite
    layers: tuple = ()
    share_linear: bool = True  # share work between linear branches (arithmetic.layer_backward)

    def position(self, index: int, kind: str) -> frozenset:
        kinds = self.layers
        convs = [i for i, k in enumerate(kinds) if k == "conv"]
        last_conv = convs[-1] if convs else -1
        tags = set()
        if index == 0:
            tags.add("first")
        if kind in kinds and kinds.index(kind) == index:
            tags.add(f"first_{kind}")
        if index == len(kinds) - 1:
            tags.add("last")
        if kind == "dense" and index > last_conv:
            tags.add("head")
        return frozenset(tags)

    def rule(self, kind: str, eqn, path: str, position=frozenset(), what: str = "", primitive=None) -> R.Rule:
        primitive = eqn.primitive.name if primitive is None else primitive
        rule = self.composite.rule_for(kind, primitive, path, position)
        where = f"{P.source(eqn)}" + (f", module {path!r}" if path else "")
        if rule is None:
            if kind == "softmax":
                raise LRPError(
                    f"jaxplain.{self.method}: no LRP rule for the softmax at {where}: LRP has no "
                    f"single answer there. Give one: rules=jaxplain.composites.custom(types="
                    f"{{'softmax': jaxplain.rules.pass_through}}, ...) passes the relevance "
                    f"through unchanged (Zennit's Pass), jaxplain.rules.gradient gives its ordinary "
                    f"backward pass; paths={{...}} chooses per softmax."
                )
            if kind == "product":
                raise LRPError(
                    f"jaxplain.{self.method}: no LRP rule for a product of two x-dependent values "
                    f"({eqn.primitive.name!r} at {where}: attention's q.k or A.v, a gate). Give one: "
                    f"rules=jaxplain.composites.attn_lrp() for Transformers, or types={{'product': "
                    f"jaxplain.rules.uniform}} (AttnLRP's half to each factor)."
                )
            if kind in ("layer_norm", "rms_norm"):
                raise LRPError(
                    f"jaxplain.{self.method}: no LRP rule for the {kind.replace('_', ' ')} at "
                    f"{where}. Give one: rules=jaxplain.composites.attn_lrp(), or types={{{kind!r}: "
                    f"jaxplain.rules.epsilon}} (epsilon through it with its statistics held "
                    f"constant, LXT's layer_norm) or jaxplain.rules.pass_through (identity)."
                )
            if kind in ("dense", "conv"):
                raise LRPError(
                    f"jaxplain.{self.method}: no rule for the {kind} layer {eqn.primitive.name!r} "
                    f"({where}). Give one: rules=jaxplain.composites.custom(types={{{kind!r}: "
                    f"jaxplain.rules.epsilon}}) or a default=."
                )
            if primitive in ("scan", "while", "cond"):
                raise LRPError(
                    f"jaxplain.{self.method}: LRP's rules follow straight-line programs, and x "
                    f"flows through {primitive!r} ({where}): a recurrent layer (nn.RNN, LSTM and "
                    f"GRU cells run as lax.scan) or other control flow. jaxplain has no LRP for "
                    f"recurrences; explain such models with the gradient family "
                    f"(jaxplain.integrated_gradients, smoothgrad, gradient_x_input) or occlusion."
                )
            raise LRPError(
                f"jaxplain.{self.method}: no LRP rule for the operation {eqn.primitive.name!r} "
                f"({what or 'its inputs depend on x'}; {where}). Supply one by its name, e.g. "
                f"rules=jaxplain.composites.custom(types={{{eqn.primitive.name!r}: "
                f"jaxplain.rules.gradient}}, ...) for its ordinary backward pass, or "
                f"jaxplain.rules.norm to split relevance in proportion to each input's share."
            )
        if rule.kind == "softmax" and kind != "softmax":
            raise LRPError(f"jaxplain.{self.method}: the rule 'softmax' is for a softmax, but it was "
                           f"given to a {kind or 'other'} operation {eqn.primitive.name!r} ({where}).")
        if rule.kind in ("uniform", "attention_head") and kind != "product":
            raise LRPError(f"jaxplain.{self.method}: the rule {rule.name!r} splits a product of two "
                           f"x-dependent values, but it was given to a {kind or 'other'} operation "
                           f"{eqn.primitive.name!r} ({where}).")
        R.check_configured(rule, f"jaxplain.{self.method} ({where})")  # a Composite built by hand
        if rule.kind == "beta_smooth" and kind != "activation":
            raise LRPError(
                f"jaxplain.{self.method}: the rule {rule.name!r} replaces an activation's backward "
                f"pass, but it was given to a {kind or 'other'} operation {eqn.primitive.name!r} "
                f"({where}); map it to the 'activation' kind."
            )
        if kind not in ("dense", "conv") and rule.kind == "layer" and rule.modifies_params:
            raise LRPError(
                f"jaxplain.{self.method}: the rule {rule.name!r} changes weights or inputs, so it "
                f"needs a dense or convolution layer, but it was given to a {kind or 'other'} "
                f"operation {eqn.primitive.name!r} ({where}); use jaxplain.rules.norm, epsilon, "
                f"zero, pass_through or gradient there."
            )
        return rule


class LRPHooks:
    """The interpreter's hooks for LRP: each operation by the composite's rule."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def region(self, site: Site, g, root, consts):
        # a region's rule goes by kind, not by its last operation's primitive
        rule = self.ctx.rule(site.kind, site.eqn, site.path, primitive="")
        if rule.kind == "beta_smooth" and not site.relu:
            raise LRPError(
                f"jaxplain.{self.ctx.method}: the rule {rule.name!r} is the backward pass of a "
                f"smoothed ReLU, but the activation at {P.source(site.eqn)}"
                f"{f', module {site.path!r}' if site.path else ''} is not a ReLU (its last "
                f"operation is {site.eqn.primitive.name!r}); give it pass_through or gradient, e.g. "
                f"by its module path in paths=."
            )
        return apply_op_rule(self.ctx, rule, site.eqn, g, [root, *consts], [True] + [False] * len(consts))

    def layer(self, site: Site, lin, x, w, b):
        ctx = self.ctx
        rule = ctx.rule(site.kind, site.eqn, site.path, ctx.position(site.index, site.kind))
        if rule.kind == "gradient":
            z = lin(x, w)
            return z if b is None else z + b
        if rule.kind == "pass":
            return self._pass_layer(site, lin, x, w, b)

        def backward(args, z, r):
            x, w, *bias = args
            rin = layer_backward(rule, lin, x, w, bias[0] if bias else None, z, r,
                                 nonneg=site.nonneg, concat=site.concat, share=ctx.share_linear)
            return [rin, None] + [None] * len(bias)

        return with_backward(_with_bias(lin), backward, [x, w] + ([] if b is None else [b]))

    def _pass_layer(self, site: Site, lin, x, w, b):
        """pass_through on a layer whose output has its input's shape (Captum's ``IdentityRule``):
        the relevance at the output goes to the input unchanged."""
        out_shape = jax.eval_shape(lin, x, w).shape
        if tuple(out_shape) != tuple(jnp.shape(x)):
            raise LRPError(
                f"jaxplain.{self.ctx.method}: pass_through needs an output shaped like the input, but "
                f"the {site.kind} layer at {P.source(site.eqn)}"
                f"{f', module {site.path!r}' if site.path else ''} maps {tuple(jnp.shape(x))} to "
                f"{tuple(out_shape)}. Use a layer rule (epsilon, zplus, ...) or "
                f"jaxplain.rules.gradient."
            )

        def backward(args, z, r):
            return [r] + [None] * (len(args) - 1)

        return with_backward(_with_bias(lin), backward, [x, w] + ([] if b is None else [b]))

    def op(self, site: Site, fn, invals, active):
        named = site.kind in ("softmax", "layer_norm", "rms_norm")
        rule = self.ctx.rule(site.kind, site.eqn, site.path, what=site.what,
                             primitive=site.kind if named else None)
        if rule.kind == "softmax":
            return _softmax_rule(fn, invals, site.axes, site.frozen)
        if rule.kind == "uniform":
            return _uniform_rule(rule, site.eqn, fn, invals, active)
        if rule.kind == "attention_head":  # attention weights constant; other products uniform
            weights = [i for i in site.weights if active[i]]
            kept = [a and i not in weights for i, a in enumerate(active)]
            if not weights or not any(kept):
                return _uniform_rule(rule, site.eqn, fn, invals, active)
            return _uniform_rule(rule, site.eqn, fn, invals, kept)
        if site.frozen is not None and rule.kind == "layer":  # the identity rule on the division
            fn = site.frozen
        return apply_op_rule(self.ctx, rule, site.eqn, fn, invals, active)


def _with_bias(lin):
    """``(x, w, *bias) -> lin(x, w) + bias``: a layer with every operand an argument."""

    def fn(x, w, *bias):
        z = lin(x, w)
        return z + bias[0] if bias else z

    return fn


def _softmax_rule(fn, invals, axes, logits_of):
    """AttnLRP's softmax rule: ``R_in = x * (R - s * sum(R))`` over ``axes``, with ``x`` the logits
    laid out as the output (``logits_of``), moved back to the input's layout."""

    def backward(args, out, r):
        (c,), s_, r = args, first(out), first(r)
        x, back = jax.vjp(logits_of, c)
        x0 = jnp.where(jnp.isneginf(x), jnp.zeros_like(x), x)
        return [back(x0 * (r - s_ * jnp.sum(r, axis=axes, keepdims=True)))[0]]

    return _wrap_multi(fn, backward, invals)


def _uniform_rule(rule, eqn, fn, invals, active):
    """AttnLRP's uniform rule for a product of x-dependent factors: half of ``R`` to each."""
    act = [i for i, a in enumerate(active) if a]
    n = len(act)

    def backward(args, out, r):
        out, r = first(out), first(r)
        cts = [None] * len(args)
        if eqn.primitive.name == "mul":  # LXT's mul2: R / n to each factor
            for i in act:
                cts[i] = sum_to(r / n, jnp.shape(args[i]))
            return cts
        g = stabilized_relevance(r, n * out, rule.stabilizer)  # LXT's matmul: R / (2 z + eps)
        _, vjp = jax.vjp(lambda *xs: first(fn(*_put(args, act, xs))), *[args[i] for i in act])
        for i, gi in zip(act, vjp(g)):
            cts[i] = args[i] * gi
        return cts

    return _wrap_multi(fn, backward, invals)


def apply_op_rule(ctx, rule, eqn, fn, invals, active):
    """Applies a non-layer rule (gradient, pass_through, norm/epsilon/zero) to ``fn(*invals)``."""
    if rule.kind == "gradient":
        return fn(*invals)
    if rule.kind in ("pass", "beta_smooth"):
        idx = [i for i, a in enumerate(active) if a]
        if len(idx) != 1:
            raise LRPError(
                f"jaxplain.{ctx.method}: {rule.name} needs an operation with one input that "
                f"depends on x, but {eqn.primitive.name!r} ({P.source(eqn)}) has {len(idx)}; use "
                f"jaxplain.rules.norm or gradient."
            )
        (k,) = idx
        beta = rule.stabilizer if rule.kind == "beta_smooth" else None

        def backward(args, out, r):
            cts = [None] * len(args)
            r = first(r)
            if beta is not None:  # softplus_beta's derivative at the activation's input
                r = jax.nn.sigmoid(beta * args[k]).astype(r.dtype) * r
            cts[k] = sum_to(r, jnp.shape(args[k]))
            return cts

        return _wrap_multi(fn, backward, invals)

    def backward(args, out, r):
        out, r = first(out), first(r)
        g = stabilized_relevance(r, out, rule.stabilizer)
        act = [i for i, a in enumerate(active) if a]
        _, vjp = jax.vjp(lambda *xs: first(fn(*_put(args, act, xs))), *[args[i] for i in act])
        grads = vjp(g)
        cts = [None] * len(args)
        for i, gi in zip(act, grads):
            cts[i] = args[i] * gi
        return cts

    return _wrap_multi(fn, backward, invals)


def _put(args, idx, vals):
    out = list(args)
    for i, v in zip(idx, vals):
        out[i] = v
    return out


def _wrap_multi(fn, backward, invals):
    """``with_backward`` for a ``fn`` that returns a list of one output."""
    out = with_backward(lambda *a: first(fn(*a)), backward, list(invals))
    return [out]
