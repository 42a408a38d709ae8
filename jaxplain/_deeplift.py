"""DeepLIFT (rescale rule) and DeepLIFT-SHAP, on the shared program interpreter.

``f`` is traced once and its program evaluated twice: at the baseline, recording the input of
every activation region (the elementwise functions of one value, e.g. a ReLU or an inline GELU; see
:mod:`jaxplain._interpret.analysis`), then at ``x`` with every activation region's backward pass
replaced by the rescale rule, ``g_in = g_out * (a(x) - a(x')) / (x - x')`` (the ordinary derivative
where ``|x - x'| < 1e-10``). Dense and convolution layers, sums, pooling and every other operation
keep their ordinary backward pass (Captum's convention: DeepLIFT's linear rule is the gradient),
except max pooling, which gets Captum's max-pooling rescale (the difference of the window maxima
goes back to the winners at ``x`` and at the baseline). The attribution is
``(x - baseline) * multipliers``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxplain import _checks, _paths, _taps
from jaxplain._contract import Explainer, make_explainer
from jaxplain._interpret import Plain, first, interpret, with_backward
from jaxplain._interpret import program as P

__all__ = [
    "deeplift",
    "deeplift_shap",
    "layer_deeplift",
    "layer_deeplift_shap",
    "neuron_deeplift",
    "neuron_deeplift_shap",
]

# Captum's threshold below which the rescale rule falls back to the gradient.
EPS = 1e-10


def _is_max_pool(site, active) -> bool:
    """A maximum over windows of one x-dependent value (max pooling), which gets its own rule."""
    return site.kind == "max_pool" and sum(active) == 1


OTHER = ("raise", "gradient")


class _Record(Plain):
    """Evaluates the program unchanged, recording each activation region's and max pooling's
    input by its site; an operation the rescale rule has no answer for raises, unless
    ``other="gradient"``."""

    def __init__(self, method: str = "deeplift", other: str = "raise"):
        self.inputs: dict = {}
        self.method, self.other = method, other

    def region(self, site, g, root, consts):
        if site.kind == "activation":
            self.inputs["region", site.index] = root
        return g(root, *consts)

    def op(self, site, fn, invals, active):
        if _is_max_pool(site, active):
            self.inputs["op", site.index] = invals[active.index(True)]
        if site.kind in ("other", "product") and self.other == "raise":
            where = P.source(site.eqn) + (f", module {site.path!r}" if site.path else "")
            raise ValueError(
                f"jaxplain.{self.method}: DeepLIFT's rescale rule has no answer for the operation "
                f"{site.eqn.primitive.name!r} ({where}): {site.what}. Its ordinary gradient "
                f"(Captum's choice) breaks summation-to-delta, so the attributions would not sum "
                f"to f(x) - f(baseline). This is what attention (a product of two x-dependent "
                f"values, a softmax's division), normalization (LayerNorm) and control flow look "
                f"like. Use integrated gradients or jaxplain.lrp (jaxplain.composites for "
                f"Transformers) there, or pass other='gradient' to accept the ordinary gradient "
                f"for such operations and check the sum with return_delta."
            )
        return fn(*invals)


class _Rescale(Plain):
    """Evaluates the program with the rescale rule on each activation region and max pooling;
    ``refs`` are their inputs at the baseline (:class:`_Record`)."""

    def __init__(self, refs: dict):
        self.refs = refs

    def region(self, site, g, root, consts):
        if site.kind != "activation":
            return g(root, *consts)
        ref = self.refs["region", site.index]

        def backward(args, out, r):
            x, x_ref, *cs = args
            out_ref = g(x_ref, *cs)
            _, vjp = jax.vjp(lambda v: g(v, *cs), x)
            (grad,) = vjp(r)
            dx = x - x_ref
            small = jnp.abs(dx) < EPS
            rescaled = r * (out - out_ref) / jnp.where(small, jnp.ones_like(dx), dx)
            return [jnp.where(small, grad, rescaled), None] + [None] * len(cs)

        return with_backward(lambda x, x_ref, *cs: g(x, *cs), backward, [root, ref, *consts])

    def op(self, site, fn, invals, active):
        if not _is_max_pool(site, active):
            return fn(*invals)
        # Captum's max-pooling rule: the difference of the window maxima, y - y', goes back to the
        # winners at x and at the baseline (m - y' to x's, y - m to the baseline's, m = max(y, y')),
        # then is divided by x - x' (the gradient where |x - x'| < 1e-10). Sums to y - y'.
        k = active.index(True)
        ref = self.refs["op", site.index]

        def pool(v, *others):
            args = list(others)
            args.insert(k, v)
            return first(fn(*args))

        others = [v for i, v in enumerate(invals) if i != k]

        def backward(args, out, r):
            x, x_ref, *cs = args
            r = first(r)
            y, vjp_x = jax.vjp(lambda v: pool(v, *cs), x)
            y_ref, vjp_ref = jax.vjp(lambda v: pool(v, *cs), x_ref)
            m = jnp.maximum(y, y_ref)
            (moved,) = vjp_x(r * (m - y_ref))
            (moved_ref,) = vjp_ref(r * (y - m))
            (grad,) = vjp_x(r)
            dx = x - x_ref
            small = jnp.abs(dx) < EPS
            rescaled = (moved + moved_ref) / jnp.where(small, jnp.ones_like(dx), dx)
            return [jnp.where(small, grad, rescaled), None] + [None] * len(cs)

        return [with_backward(lambda x, x_ref, *cs: pool(x, *cs), backward, [invals[k], ref, *others])]


def multipliers(method: str, f: Callable, other: str = "raise") -> Callable:
    """``m(x, baseline, *args)``: DeepLIFT's multipliers ``d f / d x`` under the rescale rule."""
    f_checked = _checks.scalar_output(method, f)
    other = _checks.check_choice(method, "other", other, OTHER)

    def m(x, baseline, *args, **kwargs):
        program = interpret(f_checked, x, args, kwargs)
        record = _Record(method, other)
        program.run(record)(jax.tree_util.tree_leaves(baseline))
        leaves, tree = jax.tree_util.tree_flatten(x)
        y, vjp = jax.vjp(program.run(_Rescale(record.inputs)), leaves)
        (grads,) = vjp(jnp.ones_like(y))
        return jax.tree_util.tree_unflatten(tree, grads)

    return m


def deeplift(f: Callable, *, baseline: Any = 0.0, multiply_by_inputs: bool = True,
             other: str = "raise") -> Explainer:
    """DeepLIFT with the rescale rule: ``(x - baseline) * multipliers``, where each activation's
    derivative is replaced by the finite difference ``(a(x) - a(baseline)) / (x - baseline)``.

    Satisfies summation-to-delta, ``sum(attr) = f(x) - f(baseline)``, on networks of linear
    operations and ReLUs. Equals Captum's ``DeepLift`` (rescale rule) on models whose
    activations are modules Captum knows (``nn.ReLU``, ``nn.Tanh``, ``nn.Sigmoid``...). Activations
    are found in the traced program, not by module type, so inline ones (``jax.nn.gelu``,
    ``x * sigmoid(x)``) get the rule too. Max pooling gets Captum's max-pooling rescale, so
    summation-to-delta holds through it.

    Args:
      f: ``f(x, *args) -> scalar`` for one example.
      baseline: the reference input: a scalar, an array shaped like (or broadcasting to) ``x``, a
        pytree like ``x``, or a callable ``x -> baseline``. Default 0.
      multiply_by_inputs: if false, the multipliers alone, without the factor ``(x - baseline)``
        (the "global" attribution; Captum's ``multiply_by_inputs=False``).
      other: what to do at an operation the rescale rule has no answer for (a product of two
        ``x``-dependent values as in attention, a softmax's or LayerNorm's division, control
        flow): ``"raise"`` (the default: an error naming it, since its ordinary gradient breaks
        summation-to-delta) or ``"gradient"`` (its ordinary gradient, as Captum does).

    Returns:
      ``explain(x, *args)`` shaped like ``x``; composes with ``jax.jit`` and ``jax.vmap``.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> f = lambda x: jnp.maximum(x[0] - 1.0, 0.0) + 2.0 * x[1]
      >>> attr = jx.deeplift(f, baseline=0.0)(jnp.array([3.0, 1.0]))
      >>> attr, float(attr.sum()), float(f(jnp.array([3.0, 1.0])) - f(jnp.zeros(2)))
      (Array([2., 2.], dtype=float32), 4.0, 4.0)

    References:
      Shrikumar, Greenside & Kundaje (2017), "Learning Important Features Through Propagating
      Activation Differences", ICML; Ancona, Ceolini, Öztireli & Gross (2018), "Towards better
      understanding of gradient-based attribution methods for Deep Neural Networks", ICLR.
    """
    _checks.check_callable("deeplift", "f", f)
    _checks.check_baseline("deeplift", baseline)
    multiply = _checks.check_multiply_by_inputs("deeplift", multiply_by_inputs)
    m = multipliers("deeplift", f, other)

    def core(x, *args, **kwargs):
        path = _paths.straight_path("deeplift", baseline, x)
        mult = m(x, path.start, *args, **kwargs)
        if not multiply:
            return jax.tree_util.tree_map(lambda d, g: g.astype(d.dtype), path.delta, mult)
        return jax.tree_util.tree_map(lambda d, g: (d * g).astype(d.dtype), path.delta, mult)

    options = {"baseline": baseline}
    if not multiply:
        options["multiply_by_inputs"] = False
    if other != "raise":
        options["other"] = other
    return make_explainer("deeplift", f, core, options)


def deeplift_shap(
    f: Callable, *, baselines: Any, batch_size: int | None = None, multiply_by_inputs: bool = True,
    other: str = "raise",
) -> Explainer:
    """DeepLIFT-SHAP: DeepLIFT averaged over a set of baselines (a background distribution),
    ``mean_i (x - b_i) * multipliers(x, b_i)``.

    Equals Captum's ``DeepLiftShap``. Summation-to-delta holds on average:
    ``sum(attr) = f(x) - mean_i f(b_i)`` on ReLU networks.

    Args:
      f: ``f(x, *args) -> scalar`` for one example.
      baselines: ``(n, *x.shape)`` reference inputs (n >= 1), or a pytree of such arrays; or a
        callable ``x -> baselines`` returning them (checked when called), e.g. a background
        built from the example (Captum's callable ``baselines``).
      batch_size: how many baselines are evaluated at once (``None``: chosen as in
        ``integrated_gradients``, by the input's size and the vmapped examples; the number of
        baselines for all at once).
      multiply_by_inputs: if false, the mean of the multipliers, without the factors
        ``(x - b_i)`` (Captum's ``multiply_by_inputs=False``).

    Returns:
      ``explain(x, *args)`` shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> f = lambda x: jnp.maximum(x[0], 0.0) + 2.0 * x[1]
      >>> bs = jnp.array([[0.0, 0.0], [-1.0, 1.0]])
      >>> jx.deeplift_shap(f, baselines=bs)(jnp.array([2.0, 1.0]))
      Array([2., 1.], dtype=float32)

    References:
      Lundberg & Lee (2017), "A Unified Approach to Interpreting Model Predictions", NeurIPS;
      Shrikumar, Greenside & Kundaje (2017), ICML.
    """
    _checks.check_callable("deeplift_shap", "f", f)
    batch_size = _checks.check_batch_size("deeplift_shap", batch_size)
    multiply = _checks.check_multiply_by_inputs("deeplift_shap", multiply_by_inputs)
    fixed = None if callable(baselines) else _checks.check_reference_set("deeplift_shap", baselines)
    m = multipliers("deeplift_shap", f, other)

    one = _input_attribution(m, multiply)

    def core(x, *args, **kwargs):
        return _paths.cast_like(_over_baselines("deeplift_shap", baselines, fixed, batch_size, x,
                                                lambda b: one(x, b, args, kwargs)), x)

    options = {"baselines": baselines, "batch_size": batch_size}
    if not multiply:
        options["multiply_by_inputs"] = False
    if other != "raise":
        options["other"] = other
    return make_explainer("deeplift_shap", f, core, options)


def _input_attribution(m: Callable, multiply: bool) -> Callable:
    """``one(x, b, args, kwargs)``: ``(x - b) * m(x, b)``, or the multipliers alone."""

    def one(x, b, args, kwargs):
        mult = m(x, b, *args, **kwargs)
        if not multiply:
            return mult
        return jax.tree_util.tree_map(lambda a, bb, g: (a - bb) * g, x, b, mult)

    return one


def _over_baselines(name: str, baselines, fixed, batch_size, x, one: Callable):
    """``mean_i one(b_i)`` over the reference set (``fixed``, or ``baselines(x)`` when callable)."""
    refs = fixed
    if refs is None:
        refs = _checks.check_reference_set(name, baselines(x))
    n = jax.tree_util.tree_leaves(refs)[0].shape[0]
    bs = jax.tree_util.tree_unflatten(
        jax.tree_util.tree_structure(x), _checks.check_reference_shapes(name, refs, x)
    )
    total = _paths.chunked_sum(one, bs, batch_size=batch_size, like=x)
    return jax.tree_util.tree_map(lambda t: t / n, total)


def _layer_attribution(name: str, sp: _taps.Split, m: Callable, multiply: bool):
    """``attr(x, b, args, kwargs)``: DeepLIFT at the layer, ``(A(x) - A(b)) * dF/dA`` with the
    multipliers of the network above it (``upper(A, x)``, the layer's value replaced by ``A``)."""

    def attr(x, b, args, kwargs):
        sp.check_independent(x, args, kwargs)
        a_x = sp.activation(x, *args, **kwargs)
        a_b = sp.activation(b, *args, **kwargs)
        mult, _ = m((a_x, x), (a_b, b), *args, **kwargs)
        if not multiply:
            return mult
        return jax.tree_util.tree_map(lambda p, q, g: ((p - q) * g).astype(p.dtype), a_x, a_b, mult)

    return attr


def _upper(sp: _taps.Split) -> Callable:
    return lambda ax, *args, **kwargs: sp.rest(ax[1], ax[0], *args, **kwargs)


def _whole(f, features, head) -> Callable:
    if f is not None:
        return f
    return lambda x, *args, **kwargs: head(features(x), *args, **kwargs)


def _layer_options(f, layer, features, head, layer_input, multiply, other="raise", **more) -> dict:
    options = dict(layer=layer) if f is not None else dict(features=features, head=head)
    options.update(more)
    if other != "raise":
        options["other"] = other
    if not multiply:
        options["multiply_by_inputs"] = False
    if layer_input:
        options["attribute_to_layer_input"] = True
    return options


def layer_deeplift(
    f: Callable | None = None,
    *,
    layer: Any = None,
    features: Callable | None = None,
    head: Callable | None = None,
    baseline: Any = 0.0,
    multiply_by_inputs: bool = True,
    attribute_to_layer_input: bool = False,
    return_delta: bool = False,
    other: str = "raise",
) -> Explainer:
    """DeepLIFT at a layer (Captum's ``LayerDeepLift``): ``(A(x) - A(b)) * m``, where ``m`` are
    the rescale-rule multipliers of ``f`` with respect to the layer's output ``A`` (or its input,
    ``attribute_to_layer_input=True``) and ``b`` is the INPUT baseline.

    Only the network above the layer shapes ``m``: its activations get the rescale rule between
    their values at ``x`` and at ``b``. When every path from ``x`` to ``f``'s output passes the
    layer, the attributions sum to ``f(x) - f(b)`` on networks of linear operations and ReLUs;
    ``return_delta=True`` also returns ``sum(attr) - (f(x) - f(b))``. ``layer`` may be a tuple of
    layers that do not feed each other. Other options as in :func:`jaxplain.deeplift`.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> ex = jx.layer_deeplift(features=lambda x: 2 * x, head=lambda a: jnp.maximum(a[0] - 1, 0) + a[1])
      >>> ex(jnp.array([3.0, 1.0]))  # the ReLU's secant from a = 0 to a = 6: 5 / 6
      Array([5., 2.], dtype=float32)

    References:
      Shrikumar, Greenside & Kundaje (2017), "Learning Important Features Through Propagating
      Activation Differences", ICML; Kokhlikyan et al. (2020), Captum, arXiv:2009.07896.
    """
    name = "layer_deeplift"
    sp = _taps.split(name, f, layer, features, head, layer_input=attribute_to_layer_input)
    _checks.check_baseline(name, baseline)
    multiply = _checks.check_multiply_by_inputs(name, multiply_by_inputs)
    return_delta = _checks.check_bool(name, "return_delta", return_delta)
    if return_delta and not multiply:
        raise ValueError(f"jaxplain.{name}: return_delta=True needs multiply_by_inputs=True (the "
                         f"multipliers alone do not sum to f(x) - f(baseline)).")
    attr = _layer_attribution(name, sp, multipliers(name, _upper(sp), other), multiply)
    whole = _whole(f, features, head)

    def core(x, *args, **kwargs):
        b = _paths.broadcast_like(name, "baseline", baseline, x)
        out = attr(x, b, args, kwargs)
        if not return_delta:
            return out
        gap = whole(x, *args, **kwargs) - whole(b, *args, **kwargs)
        return out, _paths.tree_total(out) - gap

    options = _layer_options(f, layer, features, head, attribute_to_layer_input, multiply, other,
                             baseline=baseline)
    if return_delta:
        options["return_delta"] = True
    return make_explainer(name, f if f is not None else features, core, options, integers=True)


def layer_deeplift_shap(
    f: Callable | None = None,
    *,
    layer: Any = None,
    features: Callable | None = None,
    head: Callable | None = None,
    baselines: Any,
    batch_size: int | None = None,
    multiply_by_inputs: bool = True,
    attribute_to_layer_input: bool = False,
    other: str = "raise",
) -> Explainer:
    """DeepLIFT-SHAP at a layer (Captum's ``LayerDeepLiftShap``): :func:`layer_deeplift` averaged
    over a set of INPUT baselines, ``mean_i (A(x) - A(b_i)) * m_i``. ``baselines``, ``batch_size``
    as in :func:`jaxplain.deeplift_shap`.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> ex = jx.layer_deeplift_shap(features=lambda x: 2 * x, head=jnp.sum,
      ...                             baselines=jnp.array([[0.0, 0.0], [1.0, 1.0]]))
      >>> ex(jnp.array([3.0, 1.0]))  # linear head: A(x) - mean A(b)
      Array([5., 1.], dtype=float32)

    References:
      Lundberg & Lee (2017), "A Unified Approach to Interpreting Model Predictions", NeurIPS;
      Kokhlikyan et al. (2020), Captum, arXiv:2009.07896.
    """
    name = "layer_deeplift_shap"
    sp = _taps.split(name, f, layer, features, head, layer_input=attribute_to_layer_input)
    batch_size = _checks.check_batch_size(name, batch_size)
    multiply = _checks.check_multiply_by_inputs(name, multiply_by_inputs)
    fixed = None if callable(baselines) else _checks.check_reference_set(name, baselines)
    attr = _layer_attribution(name, sp, multipliers(name, _upper(sp), other), multiply)

    def core(x, *args, **kwargs):
        return _over_baselines(name, baselines, fixed, batch_size, x,
                               lambda b: attr(x, b, args, kwargs))

    options = _layer_options(f, layer, features, head, attribute_to_layer_input, multiply, other,
                             baselines=baselines, batch_size=batch_size)
    return make_explainer(name, f if f is not None else features, core, options, integers=True)


def neuron_deeplift(
    f: Callable | None = None,
    *,
    layer: Any = None,
    neuron: Any,
    features: Callable | None = None,
    head: Callable | None = None,
    baseline: Any = 0.0,
    multiply_by_inputs: bool = True,
    attribute_to_layer_input: bool = False,
    other: str = "raise",
) -> Explainer:
    """DeepLIFT of one internal unit (Captum's ``NeuronDeepLift``): :func:`jaxplain.deeplift` of
    ``x -> A(x)[neuron]``; its attributions sum to the unit's change ``A(x)[n] - A(b)[n]`` on
    networks of linear operations and ReLUs. ``neuron`` as for :func:`jaxplain.neuron_gradient`.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> ex = jx.neuron_deeplift(features=lambda x: jnp.maximum(x - 1, 0), head=jnp.sum, neuron=(0,))
      >>> ex(jnp.array([3.0, 1.0]))
      Array([2., 0.], dtype=float32)

    References:
      Shrikumar, Greenside & Kundaje (2017), ICML; Kokhlikyan et al. (2020), Captum.
    """
    name = "neuron_deeplift"
    _, unit = _taps.neuron_unit(name, f, layer, features, head, neuron, layer_input=attribute_to_layer_input)
    _checks.check_baseline(name, baseline)
    multiply = _checks.check_multiply_by_inputs(name, multiply_by_inputs)
    one = _input_attribution(multipliers(name, unit, other), multiply)

    def core(x, *args, **kwargs):
        b = _paths.broadcast_like(name, "baseline", baseline, x)
        return _paths.cast_like(one(x, b, args, kwargs), x)

    options = _layer_options(f, layer, features, head, attribute_to_layer_input, multiply, other,
                             neuron=neuron, baseline=baseline)
    return make_explainer(name, f if f is not None else features, core, options)


def neuron_deeplift_shap(
    f: Callable | None = None,
    *,
    layer: Any = None,
    neuron: Any,
    features: Callable | None = None,
    head: Callable | None = None,
    baselines: Any,
    batch_size: int | None = None,
    multiply_by_inputs: bool = True,
    attribute_to_layer_input: bool = False,
    other: str = "raise",
) -> Explainer:
    """DeepLIFT-SHAP of one internal unit (Captum's ``NeuronDeepLiftShap``):
    :func:`jaxplain.deeplift_shap` of ``x -> A(x)[neuron]``.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> ex = jx.neuron_deeplift_shap(features=lambda x: 3 * x, head=jnp.sum, neuron=(1,),
      ...                              baselines=jnp.array([[0.0, 0.0], [0.0, 2.0]]))
      >>> ex(jnp.array([1.0, 1.0]))
      Array([0., 0.], dtype=float32)

    References:
      Lundberg & Lee (2017), NeurIPS; Kokhlikyan et al. (2020), Captum.
    """
    name = "neuron_deeplift_shap"
    _, unit = _taps.neuron_unit(name, f, layer, features, head, neuron, layer_input=attribute_to_layer_input)
    batch_size = _checks.check_batch_size(name, batch_size)
    multiply = _checks.check_multiply_by_inputs(name, multiply_by_inputs)
    fixed = None if callable(baselines) else _checks.check_reference_set(name, baselines)
    one = _input_attribution(multipliers(name, unit, other), multiply)

    def core(x, *args, **kwargs):
        return _paths.cast_like(_over_baselines(name, baselines, fixed, batch_size, x,
                                                lambda b: one(x, b, args, kwargs)), x)

    options = _layer_options(f, layer, features, head, attribute_to_layer_input, multiply, other,
                             neuron=neuron, baselines=baselines, batch_size=batch_size)
    return make_explainer(name, f if f is not None else features, core, options)
