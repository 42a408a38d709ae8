"""The backward arithmetic of LRP rules: relevance at a layer's input from the rule's branches
(see :mod:`jaxplain._lrp.rules`), with the work shared between branches where that is cheaper."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain._lrp import rules as R

__all__ = ["layer_backward", "stabilized_relevance", "sum_to"]


def stabilized_relevance(r, z, stabilizer):
    """``r / stab(z)``."""
    return r / R.stabilize(z, stabilizer)


def sum_to(r, shape):
    """``r`` summed over the axes it was broadcast along to match ``shape``."""
    if r.shape == tuple(shape):
        return r
    lead = r.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and r.shape[i + lead] != 1)
    return jnp.sum(r, axis=axes, keepdims=False).reshape(shape) if axes else r.reshape(shape)


def layer_backward(rule: R.Rule, lin: Callable, x, w, b, z, r, *, nonneg: bool, concat=None, share: bool = True):
    """Relevance at a layer's input: the rule's branches (see :mod:`jaxplain._lrp.rules`).

    ``concat = (input axis, weight axis)``, the axes the layer contracts, lets branches of one
    group that need their own weights (z^B's ``W``, ``W+``, ``W-``) run as one operation on
    inputs and weights concatenated along them: one wide convolution instead of several narrow
    ones (the first layer's three input channels are where XLA:CPU is slowest).

    Branches whose weight modifier is linear in ``(W, W+)`` (its ``linear`` attribute) share work:
    per distinct input, the forward pass needs ``inp W`` (free when ``inp`` is the layer's own
    input: ``z - b``) and ``inp W+`` once, and the backward pass two transposed operations whatever
    the number of branches. Other modifiers get a forward and a transpose of their own.
    ``share=False`` gives every branch its own (the tests check both ways agree).
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
        shared[key] = share and fwd + len(needs) < 2 * len(own) + (len(mine) - len(own))

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
