"""``jaxplain.lrp``: layer-wise relevance propagation as a function transform."""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from jaxplain import _checks
from jaxplain._contract import Explainer, make_explainer
from jaxplain._interpret import interpret
from jaxplain._lrp import composites as K
from jaxplain._lrp import propagate as P
from jaxplain._lrp import rules as R

__all__ = ["lrp", "propagate", "resolve_rules"]


def resolve_rules(method: str, rules: Any) -> K.Composite:
    """A composite from ``rules=``: a composite, or one rule for every dense/convolution layer."""
    if isinstance(rules, K.Composite):
        return rules
    if isinstance(rules, R.Rule):
        R.check_configured(rules, f"jaxplain.{method}")
        if rules.kind == "pass":
            raise ValueError(
                f"jaxplain.{method}: pass_through cannot be the rule of every layer (dense and "
                f"convolution layers change their input's shape in general); give a layer rule "
                f"such as jaxplain.rules.epsilon, or pass_through for chosen layers whose output "
                f"is shaped like their input: jaxplain.composites.custom(paths={{'proj': "
                f"jaxplain.rules.pass_through}}, default=jaxplain.rules.epsilon)."
            )
        return K.custom(default=rules)
    if callable(rules) and getattr(rules, "__module__", "").startswith("jaxplain._lrp.composites"):
        raise TypeError(
            f"jaxplain.{method}: rules={rules.__name__} is a composite factory; call it: "
            f"rules=jaxplain.composites.{rules.__name__}(...)."
        )
    raise TypeError(
        f"jaxplain.{method}: rules must be a composite (e.g. jaxplain.composites.epsilon_plus_flat()) "
        f"or a rule (e.g. jaxplain.rules.epsilon), got {type(rules).__name__} {rules!r}."
    )


def _zbox_bounds(composite: K.Composite) -> list[tuple[Any, Any]]:
    rules = [r for _, r in composite.types] + [r for _, r in composite.paths] + [r for _, r in composite.first]
    rules += [composite.last, composite.head, composite.default]
    return [
        (dict(r.options)["low"], dict(r.options)["high"])
        for r in rules
        if isinstance(r, R.Rule) and r.name == "zbox" and r.options
    ]


def _check_bounds(method: str, bounds, x) -> None:
    """z^B needs the input inside its box: checked when x is concrete (outside a trace)."""
    if not bounds:
        return
    for leaf in jax.tree_util.tree_leaves(x):
        if isinstance(leaf, jax.core.Tracer):
            return
        a = np.asarray(leaf)
        for low, high in bounds:
            lo, hi = np.asarray(low), np.asarray(high)
            try:
                below = np.any(a < lo)
                above = np.any(a > hi)
            except ValueError as err:
                raise ValueError(
                    f"jaxplain.{method}: the z^B bounds (low shape {lo.shape}, high shape "
                    f"{hi.shape}) do not broadcast against x of shape {a.shape}; give scalars or "
                    f"per-channel arrays that broadcast to x."
                ) from err
            if below or above:
                raise ValueError(
                    f"jaxplain.{method}: x lies outside the z^B box [low, high] of the first layer "
                    f"(x ranges over [{a.min():.4g}, {a.max():.4g}], low={low}, high={high}). "
                    f"The bounds must be the lowest and highest values the input can take, e.g. "
                    f"low=0.0, high=1.0 for images in [0, 1]; for standardized images pass the "
                    f"standardized bounds per channel."
                )


def _check_paths(method: str, composite: K.Composite, program) -> None:
    """A path pattern that reaches no operation of the program is a mistake: say so. A layer rule
    reaches dense/convolution layers, ``pass_through`` and ``gradient`` any operation."""
    if not composite.paths:
        return
    every = program.paths()
    layers = list(dict.fromkeys(p for _, p in program.layers() if p))
    for pattern, rule in composite.paths:
        if rule.kind in ("pass", "gradient"):
            paths, what = every, "operation"
        else:
            paths, what = layers, "dense or convolution layer"
        if not any(K.path_matches(pattern, p) for p in paths):
            shown = ", ".join(repr(p) for p in paths) or "none (no module call was found in f)"
            raise ValueError(
                f"jaxplain.{method}: the path pattern {pattern!r} (rule {rule.name!r}) matches no "
                f"{what} of f. Module paths of the {what}s that touch x: {shown}. A pattern matches "
                f"a path or a trailing part of it, with the paths jaxplain.layers(f, x, *args) "
                f"lists (e.g. 'blocks/0/*')."
            )


def relevance(method: str, f: Callable, composite: K.Composite, *, share_linear: bool = True) -> Callable:
    """``explain(x, *args) -> relevance of x``: the program of ``f`` run with ``composite``'s rules,
    its backward pass started with ``f(x)``."""
    f_checked = _checks.scalar_output(method, f)

    def core(x, *args, **kwargs):
        program = interpret(f_checked, x, args, kwargs, softmax=True)
        return propagate(method, program, composite, x, share_linear=share_linear)[1]

    return core


def propagate(method: str, program, composite: K.Composite, x, *, share_linear: bool = True):
    """``(f(x), relevance of x)`` for an interpreted ``program`` of ``f``."""
    _check_paths(method, composite, program)
    layers = tuple(kind for kind, _ in program.layers())
    ctx = P.Context(method, composite, layers, share_linear)
    run = program.run(P.LRPHooks(ctx))
    leaves, tree = jax.tree_util.tree_flatten(x)
    y, vjp = jax.vjp(run, leaves)
    (rel,) = vjp(y)
    return y, jax.tree_util.tree_unflatten(tree, [r.astype(l.dtype) for r, l in zip(rel, leaves)])


def lrp(f: Callable, *, rules: Any = None) -> Explainer:
    """Layer-wise relevance propagation: how much each input feature contributes to ``f(x)``.

    The output ``f(x)`` is the relevance at the top; each operation of ``f`` hands relevance back
    to its inputs by its rule: dense and convolution layers by the composite's LRP rule,
    activations and normalization pass it through, sums and average pooling split it in
    proportion to their inputs, max pooling gives it to the winner (see
    :mod:`jaxplain._lrp.composites`). With LRP-0 or epsilon -> 0 on a bias-free ReLU network the
    relevances sum to ``f(x)``.

    ``f`` is traced to a jaxpr and re-evaluated with each rule as a ``jax.custom_vjp``: Flax Linen
    and NNX models and plain ``jnp`` functions work without changes; dense layers, 1-D/2-D/3-D
    convolutions, flatten/reshape, upsampling, any elementwise activation (ELU, GELU...),
    embeddings (a gather: relevance moves to the looked-up rows), residual additions and
    BatchNorm in inference mode are understood. An operation with no rule raises an error naming
    it (e.g. a product of two ``x``-dependent values); give it a rule by its primitive name.

    Args:
      f: ``f(x, *args) -> scalar`` for one example, e.g. ``lambda x, t: model(x[None])[0, t]``.
      rules: a composite (``jaxplain.composites.epsilon_plus_flat()``, the default; or
        ``jaxplain.composites.custom(...)``) or one rule (e.g. ``jaxplain.rules.epsilon``) for
        every dense and convolution layer.

    Returns:
      ``explain(x, *args)``: the relevance of each element of ``x``, shaped like ``x``; composes
      with ``jax.jit``, ``jax.vmap`` and ``jax.grad``.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> w1 = jnp.array([[1.0, -1.0], [2.0, 1.0]]); w2 = jnp.array([1.0, 1.0])
      >>> f = lambda x: jnp.maximum(x @ w1, 0) @ w2
      >>> x = jnp.array([1.0, 1.0])
      >>> r = jx.lrp(f, rules=jx.rules.zero)(x)
      >>> r, float(r.sum()), float(f(x))  # bias-free ReLU network: relevance is conserved
      (Array([1., 2.], dtype=float32), 3.0, 3.0)

    References:
      Bach, Binder, Montavon, Klauschen, Müller & Samek (2015), "On Pixel-Wise Explanations for
      Non-Linear Classifier Decisions by Layer-Wise Relevance Propagation", PLoS ONE 10(7);
      Montavon, Binder, Lapuschkin, Samek & Müller (2019), "Layer-Wise Relevance Propagation: An
      Overview", in Explainable AI: Interpreting, Explaining and Visualizing Deep Learning.
    """
    _checks.check_callable("lrp", "f", f)
    composite = resolve_rules("lrp", K.epsilon_plus_flat() if rules is None else rules)
    bounds = _zbox_bounds(composite)
    explainer = make_explainer(
        "lrp",
        f,
        relevance("lrp", f, composite),
        {"rules": composite if rules is None else rules},
        check=lambda x: _check_bounds("lrp", bounds, x),
    )
    return explainer
