"""Layer and neuron attribution: what a layer's units contribute to ``f``, and what the input
contributes to one internal unit. Layers are reached by module path (see :mod:`jaxplain._taps`).

Every factory takes either ``f`` and ``layer=`` (a module path), or ``features=`` and ``head=``
(``features(x) -> A``, ``head(A, *args) -> scalar``). Layer attributions are shaped like the layer's
output for one example: a model called by hand on ``x[None]`` keeps that leading axis of 1, an
``f`` made by :mod:`jaxplain.flax` (which adds the batch axis itself) does not. Neuron
attributions are shaped like ``x``.

The layer methods also take a tuple (or list) of paths, ``layer=("block1", "block2")``: one
compiled program, a tuple of attributions, one per layer. Gradients at several layers are total
derivatives (a later layer's gradient flows into an earlier one's); the methods that replace the
layers' values at once (``layer_integrated_gradients``) need layers that do not feed each other
(parallel branches, a cut of the network) and raise otherwise. ``attribute_to_layer_input=True``
(Captum's option of the same name; ``attribute_to_neuron_input`` for its neuron methods) taps the
first positional input of the module instead of its output.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxplain import _checks, _paths, _taps
from jaxplain._contract import Explainer, make_explainer

__all__ = [
    "layer_activation",
    "layer_gradient_x_activation",
    "layer_integrated_gradients",
    "layer_conductance",
    "internal_influence",
    "neuron_gradient",
    "neuron_integrated_gradients",
    "neuron_conductance",
    "layer_gradient_shap",
    "neuron_gradient_shap",
]

_tmap = jax.tree_util.tree_map


def _path_options(name, baseline, steps, method, batch_size, *, extra_points=0) -> _paths.PathOptions:
    return _paths.path_options(name, baseline=baseline, steps=steps, method=method,
                               batch_size=batch_size, extra_points=extra_points)


def layer_activation(f=None, *, layer=None, features=None, head=None,
                     attribute_to_layer_input: bool = False) -> Explainer:
    """The output of a layer, read without editing the model (Captum's ``LayerActivation``).

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> from jaxplain.zoo import VGG
      >>> model = VGG(features=(8,), classes=4)
      >>> v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
      >>> f = lambda x, t: model.apply(v, x[None])[0, t]
      >>> jx.layer_activation(f, layer="stage0/conv1")(jnp.ones((16, 16, 3)), 0).shape
      (1, 16, 16, 8)

    References:
      Kokhlikyan et al. (2020), "Captum: A unified and generic model interpretability library for
      PyTorch", arXiv:2009.07896.
    """
    name = "layer_activation"
    sp = _taps.split(name, f, layer, features, head, layer_input=attribute_to_layer_input)
    return make_explainer(name, f or features, sp.activation,
                          _options(dict(layer=layer), attribute_to_layer_input), integers=True)


def layer_gradient_x_activation(f=None, *, layer=None, features=None, head=None,
                                attribute_to_layer_input: bool = False) -> Explainer:
    """``A * dF/dA`` at a layer (Captum's ``LayerGradientXActivation``).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> w = jnp.array([1.0, -2.0])
      >>> ex = jx.layer_gradient_x_activation(features=lambda x: 3 * x, head=lambda a: w @ a)
      >>> ex(jnp.array([1.0, 1.0]))
      Array([ 3., -6.], dtype=float32)

    References:
      Shrikumar et al. (2016), "Not Just a Black Box", arXiv:1605.01713 (gradient x input, here at
      a layer).
    """
    name = "layer_gradient_x_activation"
    sp = _taps.split(name, f, layer, features, head, layer_input=attribute_to_layer_input)

    def core(x, *args, **kwargs):
        a, g = _taps.layer_gradient(sp, x, args, kwargs)
        return _tmap(jnp.multiply, a, g)

    return make_explainer(name, f or features, core, _options(dict(layer=layer), attribute_to_layer_input),
                          integers=True)


def layer_integrated_gradients(
    f=None,
    *,
    layer=None,
    features=None,
    head=None,
    baseline: Any = 0.0,
    steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int | None = None,
    return_delta: bool = False,
    multiply_by_inputs: bool = True,
    attribute_to_layer_input: bool = False,
) -> Explainer:
    """Integrated gradients in a layer's activation space (Captum's ``LayerIntegratedGradients``).

    With ``a_x`` and ``a_b`` the layer's outputs at ``x`` and at the input baseline ``b``, the
    attribution is ``(a_x - a_b) * integral_0^1 dF/dA(a_b + alpha (a_x - a_b)) d alpha``, where
    ``F`` is ``f`` with the layer's output replaced. When all of ``f``'s dependence on ``x`` flows
    through the layer, the attributions sum to ``f(x) - f(b)`` (``return_delta=True`` reports the
    gap). Options as in :func:`jaxplain.integrated_gradients`; ``baseline`` is an INPUT baseline.
    ``multiply_by_inputs=False`` gives the mean of ``dF/dA`` along the path, without the factor
    ``(a_x - a_b)`` (Captum's ``LayerIntegratedGradients(multiply_by_inputs=False)``).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> ex = jx.layer_integrated_gradients(features=lambda x: 2 * x, head=lambda a: jnp.sum(a ** 2))
      >>> ex(jnp.array([1.0, 3.0])).round(4)  # IG of sum(a^2) from 0 is a^2
      Array([ 4., 36.], dtype=float32)

    References:
      Sundararajan, Taly & Yan (2017), "Axiomatic Attribution for Deep Networks", ICML;
      Kokhlikyan et al. (2020), Captum, arXiv:2009.07896.
    """
    name = "layer_integrated_gradients"
    sp = _taps.split(name, f, layer, features, head, layer_input=attribute_to_layer_input)
    opts = _path_options(name, baseline, steps, method, batch_size)
    return_delta = _checks.check_bool(name, "return_delta", return_delta)
    multiply = _checks.check_multiply_by_inputs(name, multiply_by_inputs, return_delta=return_delta)

    def core(x, *args, **kwargs):
        b = _paths.broadcast_like(name, "baseline", baseline, x)
        sp.check_independent(x, args, kwargs)
        path = _paths.between(sp.activation(b, *args, **kwargs), sp.activation(x, *args, **kwargs))
        grad_rest = jax.grad(lambda a: sp.rest(x, a, *args, **kwargs))
        total = _paths.path_integral(grad_rest, path, opts.alphas, opts.weights, batch_size=opts.batch_size)
        if not multiply:
            return total
        attr = _tmap(jnp.multiply, path.delta, total)
        if not return_delta:
            return attr
        gap = sp.forward(x, None, *args, **kwargs)[0] - sp.forward(b, None, *args, **kwargs)[0]
        return attr, _paths.tree_total(attr) - gap

    options = dict(layer=layer, baseline=baseline, steps=opts.steps, method=opts.method,
                   batch_size=opts.batch_size)
    if not multiply:
        options["multiply_by_inputs"] = False
    return make_explainer(name, f or features, core, _options(options, attribute_to_layer_input),
                          integers=True)


def layer_conductance(
    f=None,
    *,
    layer=None,
    features=None,
    head=None,
    baseline: Any = 0.0,
    steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int | None = None,
    return_delta: bool = False,
    attribute_to_layer_input: bool = False,
) -> Explainer:
    """Conductance of a layer's units along the input path (Captum's ``LayerConductance``).

    Moves along the straight input path ``b + alpha (x - b)`` at ``steps + 1`` points
    ``alpha_0..alpha_n`` of the quadrature rule and sums, per unit,
    ``(A(alpha_{k+1}) - A(alpha_k)) * dF/dA(alpha_k)``: the flow of the prediction's change through
    each unit. The sum over units approximates ``f(x) - f(b)`` (exactly in the limit, when all
    dependence flows through the layer); ``return_delta=True`` also returns the gap
    ``sum(attribution) - (f(x) - f(b))`` (Captum's ``return_convergence_delta``).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> ex = jx.layer_conductance(features=lambda x: 2 * x, head=lambda a: jnp.sum(a), steps=4,
      ...                           method="riemann_trapezoid")
      >>> ex(jnp.array([1.0, 3.0]))  # linear head: the change of each unit
      Array([2., 6.], dtype=float32)

    References:
      Dhamdhere, Sundararajan & Yan (2018), "How Important Is a Neuron?", arXiv:1805.12233.
    """
    name = "layer_conductance"
    sp = _taps.split(name, f, layer, features, head, layer_input=attribute_to_layer_input)
    opts = _path_options(name, baseline, steps, method, batch_size, extra_points=1)
    return_delta = _checks.check_bool(name, "return_delta", return_delta)

    def core(x, *args, **kwargs):
        path = _paths.straight_path(name, baseline, x)
        at = lambda point: _taps.layer_gradient(sp, point, args, kwargs)
        a, g = _paths.path_map(at, path, opts.alphas, batch_size=opts.batch_size)
        attr = _tmap(lambda aa, gg: jnp.sum((aa[1:] - aa[:-1]) * gg[:-1], axis=0), a, g)
        if not return_delta:
            return attr
        gap = sp.forward(x, None, *args, **kwargs)[0] - sp.forward(path.start, None, *args, **kwargs)[0]
        return attr, _paths.tree_total(attr) - gap

    options = dict(layer=layer, baseline=baseline, steps=opts.steps, method=opts.method,
                   batch_size=opts.batch_size)
    if return_delta:
        options["return_delta"] = True
    return make_explainer(name, f or features, core, _options(options, attribute_to_layer_input))


def internal_influence(
    f=None,
    *,
    layer=None,
    features=None,
    head=None,
    baseline: Any = 0.0,
    steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int | None = None,
    attribute_to_layer_input: bool = False,
    return_delta: bool = False,
) -> Explainer:
    """Internal (distributional) influence of a layer's units (Captum's ``InternalInfluence``).

    Leino et al. define the influence of an internal slice ``z`` on a quantity of interest ``F``
    under a distribution of interest ``P`` as ``E_{x ~ P}[dF/dz(x)]``. This explainer takes ``P``
    uniform on the straight path from ``b`` to ``x`` (Captum's choice):
    ``integral_0^1 dF/dA(b + alpha (x - b)) d alpha``. The other pieces are ordinary JAX:

    * the quantity of interest is ``f``: a class score ``lambda x, t: logits(x)[t]``, or the
      comparative ``lambda x, a, c: logits(x)[a] - logits(x)[c]`` ("class a rather than c");
    * a distribution of interest over one class or a dataset is a mean over examples:
      ``jnp.mean(jax.vmap(explainer)(xs, ts), axis=0)`` (with ``baseline=x`` itself, ``steps=1``
      gives the plain gradient at each example).

    Influence is a gradient, not a share of ``f(x) - f(b)``; ``return_delta=True`` also returns
    how far it is from one, ``sum((A(x) - A(b)) * influence) - (f(x) - f(b))``: zero when the
    layer moves linearly along the path (e.g. an affine first layer), where
    ``(A(x) - A(b)) * influence`` is layer integrated gradients.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> ex = jx.internal_influence(features=lambda x: 2 * x, head=lambda a: jnp.sum(a ** 2))
      >>> ex(jnp.array([1.0, 3.0])).round(4)  # mean of 2 a over the path = a_x
      Array([2., 6.], dtype=float32)

    References:
      Leino, Sen, Datta, Fredrikson & Li (2018), "Influence-Directed Explanations for Deep
      Convolutional Networks", IEEE International Test Conference.
    """
    name = "internal_influence"
    sp = _taps.split(name, f, layer, features, head, layer_input=attribute_to_layer_input)
    opts = _path_options(name, baseline, steps, method, batch_size)
    return_delta = _checks.check_bool(name, "return_delta", return_delta)

    def core(x, *args, **kwargs):
        path = _paths.straight_path(name, baseline, x)
        layer_grad = lambda point: _taps.layer_gradient(sp, point, args, kwargs)[1]
        influence = _paths.path_integral(layer_grad, path, opts.alphas, opts.weights,
                                         batch_size=opts.batch_size)
        if not return_delta:
            return influence
        (out_x, a_x), (out_b, a_b) = (sp.forward(p, None, *args, **kwargs) for p in (x, path.start))
        moved = _tmap(lambda p, q, g: (p - q) * g, a_x, a_b, influence)
        return influence, _paths.tree_total(moved) - (out_x - out_b)

    options = dict(layer=layer, baseline=baseline, steps=opts.steps, method=opts.method,
                   batch_size=opts.batch_size)
    if return_delta:
        options["return_delta"] = True
    return make_explainer(name, f or features, core, _options(options, attribute_to_layer_input))


def _options(options: dict, layer_input: bool) -> dict:
    if layer_input:
        options["attribute_to_layer_input"] = True
    return options


def neuron_gradient(f=None, *, layer=None, neuron, features=None, head=None,
                    attribute_to_layer_input: bool = False) -> Explainer:
    """The gradient of one internal unit with respect to the input (Captum's ``NeuronGradient``).

    ``neuron`` is an index tuple into the layer's output for one example (one index per axis:
    ``(h, w, c)`` for an ``f`` made by :mod:`jaxplain.flax`; with the leading batch axis of 1,
    ``(0, h, w, c)``, for a closure that calls the model on ``x[None]``), each in
    ``[-size, size)`` (an index out of range raises, it is never clamped), or a callable
    ``A -> scalar`` (e.g. ``lambda a: a[..., 7].mean()`` for a whole channel).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> ex = jx.neuron_gradient(features=lambda x: x ** 2, head=jnp.sum, neuron=(1,))
      >>> ex(jnp.array([1.0, 3.0]))
      Array([0., 6.], dtype=float32)

    References:
      Kokhlikyan et al. (2020), Captum, arXiv:2009.07896.
    """
    name = "neuron_gradient"
    _, unit = _taps.neuron_unit(name, f, layer, features, head, neuron,
                                 layer_input=attribute_to_layer_input)
    return make_explainer(name, f or features, jax.grad(unit),
                          _options(dict(layer=layer, neuron=neuron), attribute_to_layer_input))


def neuron_integrated_gradients(
    f=None,
    *,
    layer=None,
    neuron,
    features=None,
    head=None,
    baseline: Any = 0.0,
    steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int | None = None,
    multiply_by_inputs: bool = True,
    attribute_to_layer_input: bool = False,
) -> Explainer:
    """Integrated gradients of one internal unit with respect to the input (Captum's
    ``NeuronIntegratedGradients``): :func:`jaxplain.integrated_gradients` of ``x -> A(x)[neuron]``
    (``multiply_by_inputs=False``: the path's mean gradient, without the factor ``(x - b)``).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> ex = jx.neuron_integrated_gradients(features=lambda x: x ** 2, head=jnp.sum, neuron=(1,))
      >>> ex(jnp.array([1.0, 3.0])).round(4)
      Array([0., 9.], dtype=float32)

    References:
      Sundararajan, Taly & Yan (2017), "Axiomatic Attribution for Deep Networks", ICML.
    """
    name = "neuron_integrated_gradients"
    _, unit = _taps.neuron_unit(name, f, layer, features, head, neuron,
                                 layer_input=attribute_to_layer_input)
    opts = _path_options(name, baseline, steps, method, batch_size)
    multiply = _checks.check_multiply_by_inputs(name, multiply_by_inputs)

    def core(x, *args, **kwargs):
        path = _paths.straight_path(name, baseline, x)
        return _paths.integrated_gradients(unit, path, opts, args, kwargs, x, multiply=multiply)

    options = dict(layer=layer, neuron=neuron, baseline=baseline, steps=opts.steps,
                   method=opts.method, batch_size=opts.batch_size)
    if not multiply:
        options["multiply_by_inputs"] = False
    return make_explainer(name, f or features, core, _options(options, attribute_to_layer_input))


def neuron_conductance(
    f=None,
    *,
    layer=None,
    neuron,
    features=None,
    head=None,
    baseline: Any = 0.0,
    steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int | None = None,
    attribute_to_layer_input: bool = False,
) -> Explainer:
    """Conductance of the input through one internal unit (Captum's ``NeuronConductance``):
    ``(x - b) * integral_0^1 dF/dn * dn/dx (b + alpha (x - b)) d alpha`` for the unit ``n``.
    Summed over the input, it is the unit's conductance: its share of ``f(x) - f(b)``.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> ex = jx.neuron_conductance(features=lambda x: 2 * x, head=lambda a: jnp.sum(a ** 2),
      ...                            neuron=(1,))
      >>> ex(jnp.array([1.0, 3.0])).round(4)  # only x_1 flows through unit 1: (2 * 3)^2
      Array([ 0., 36.], dtype=float32)

    References:
      Dhamdhere, Sundararajan & Yan (2018), "How Important Is a Neuron?", arXiv:1805.12233.
    """
    name = "neuron_conductance"
    sp, unit = _taps.neuron_unit(name, f, layer, features, head, neuron,
                                 layer_input=attribute_to_layer_input)
    select = _taps.neuron_selector(name, neuron)
    opts = _path_options(name, baseline, steps, method, batch_size)

    def core(x, *args, **kwargs):
        path = _paths.straight_path(name, baseline, x)

        def flow(point):  # dF/dn * dn/dx at one point
            dF_dn = select(_taps.layer_gradient(sp, point, args, kwargs)[1])
            return _tmap(lambda g: dF_dn.astype(g.dtype) * g, jax.grad(unit)(point, *args, **kwargs))

        total = _paths.path_integral(flow, path, opts.alphas, opts.weights, batch_size=opts.batch_size)
        return _paths.cast_like(_tmap(jnp.multiply, path.delta, total), x)

    options = dict(layer=layer, neuron=neuron, baseline=baseline, steps=opts.steps,
                   method=opts.method, batch_size=opts.batch_size)
    return make_explainer(name, f or features, core, _options(options, attribute_to_layer_input))


def layer_gradient_shap(
    f=None,
    *,
    layer=None,
    features=None,
    head=None,
    baselines: Any,
    samples: int = 5,
    sigma: float = 0.0,
    batch_size: int | None = None,
    multiply_by_inputs: bool = True,
    attribute_to_layer_input: bool = False,
) -> Explainer:
    """Gradient SHAP at a layer (Captum's ``LayerGradientShap``): the mean over ``samples`` draws
    of ``(A(x') - A(b)) * dF/dA(b + alpha (x' - b))``, with ``b`` drawn from the INPUT reference
    set ``baselines``, ``alpha ~ U(0, 1)`` and ``x' = x + N(0, sigma^2)``: the draws of
    :func:`jaxplain.gradient_shap` (the same key gives the same draws), with the layer's values in
    place of the input's. ``multiply_by_inputs=False`` gives the mean layer gradient. Random: call
    it with ``key=``.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> ex = jx.layer_gradient_shap(features=lambda x: 2 * x, head=lambda a: jnp.sum(3 * a),
      ...                             baselines=jnp.zeros((2, 2)))
      >>> ex(jnp.array([1.0, -1.0]), key=jax.random.key(0))  # linear: 3 * (A(x) - A(0))
      Array([ 6., -6.], dtype=float32)

    References:
      Lundberg & Lee (2017), "A Unified Approach to Interpreting Model Predictions", NeurIPS;
      Kokhlikyan et al. (2020), Captum, arXiv:2009.07896.
    """
    name = "layer_gradient_shap"
    sp = _taps.split(name, f, layer, features, head, layer_input=attribute_to_layer_input)
    multiply = _checks.check_multiply_by_inputs(name, multiply_by_inputs)
    samples = _checks.check_int(name, "samples", samples, minimum=1)
    sigma = _checks.check_float(name, "sigma", sigma, minimum=0.0)
    batch_size = _checks.check_batch_size(name, batch_size)
    refs = _checks.check_reference_set(name, baselines)
    n_refs = jax.tree_util.tree_leaves(refs)[0].shape[0]

    def core(x, *args, key, **kwargs):
        leaves, treedef = jax.tree_util.tree_flatten(x)
        ref_leaves = _checks.check_reference_shapes(name, refs, x)
        tree = lambda ls: jax.tree_util.tree_unflatten(treedef, ls)

        act = lambda ls: sp.activation(tree(ls), *args, **kwargs)
        if multiply:  # the layer at each reference (and at x without noise) once, not per draw
            a_refs = _paths.chunked_map(act, list(ref_leaves), batch_size=batch_size, like=x)
            a_clean = act(leaves) if sigma == 0 else None

        def one(k):
            xs, _, point, idx = _paths.shap_draw(k, leaves, ref_leaves, n_refs, sigma)
            _, g = _taps.layer_gradient(sp, tree(point), args, kwargs)
            if not multiply:
                return g
            a_x = a_clean if a_clean is not None else act(xs)
            a_b = _tmap(lambda r: r[idx], a_refs)
            return _tmap(lambda p, q, gg: (p - q) * gg, a_x, a_b, g)

        total = _paths.chunked_sum(one, jax.random.split(key, samples), batch_size=batch_size, like=x)
        return _tmap(lambda t: t / samples, total)

    options = dict(layer=layer, baselines=baselines, samples=samples, sigma=sigma, batch_size=batch_size)
    if not multiply:
        options["multiply_by_inputs"] = False
    return make_explainer(name, f or features, core, _options(options, attribute_to_layer_input),
                          needs_key=True)


def neuron_gradient_shap(
    f=None,
    *,
    layer=None,
    neuron,
    features=None,
    head=None,
    baselines: Any,
    samples: int = 5,
    sigma: float = 0.0,
    batch_size: int | None = None,
    multiply_by_inputs: bool = True,
    attribute_to_layer_input: bool = False,
) -> Explainer:
    """Gradient SHAP of one internal unit (Captum's ``NeuronGradientShap``):
    :func:`jaxplain.gradient_shap` of ``x -> A(x)[neuron]`` (same options, same draws for the same
    key). Random: call it with ``key=``.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> ex = jx.neuron_gradient_shap(features=lambda x: 2 * x, head=jnp.sum, neuron=(0,),
      ...                              baselines=jnp.zeros((3, 2)))
      >>> ex(jnp.array([1.5, 1.0]), key=jax.random.key(0))
      Array([3., 0.], dtype=float32)

    References:
      Lundberg & Lee (2017), NeurIPS; Kokhlikyan et al. (2020), Captum, arXiv:2009.07896.
    """
    from jaxplain import gradient_shap  # the gradient family, by its public name

    name = "neuron_gradient_shap"
    _, unit = _taps.neuron_unit(name, f, layer, features, head, neuron,
                                layer_input=attribute_to_layer_input)
    try:
        inner = gradient_shap(unit, baselines=baselines, samples=samples, sigma=sigma,
                              batch_size=batch_size, multiply_by_inputs=multiply_by_inputs)
    except (TypeError, ValueError) as err:
        raise type(err)(str(err).replace("jaxplain.gradient_shap", f"jaxplain.{name}")) from None

    def core(x, *args, key, **kwargs):
        return inner(x, *args, key=key, **kwargs)

    options = dict(layer=layer, neuron=neuron, **{k: v for k, v in inner.options.items()})
    return make_explainer(name, f or features, core, _options(options, attribute_to_layer_input),
                          needs_key=True)
