"""The gradient family: gradient, saliency, gradient x input, integrated gradients, SmoothGrad /
VarGrad, expected gradients (gradient SHAP), and the quadrature rules integrated gradients uses."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxplain import _checks
from jaxplain import _paths
from jaxplain._contract import Explainer, make_explainer
from jaxplain._interpret import affine

__all__ = [
    "gradient",
    "saliency",
    "gradient_x_input",
    "integrated_gradients",
    "smoothgrad",
    "expected_gradients",
    "gradient_shap",
]

_tmap = jax.tree_util.tree_map


def gradient(f: Callable) -> Explainer:
    """The gradient ``df/dx`` of a scalar function of one example.

    The plain sensitivity map: ``jax.grad(f)`` under the jaxplain contract (input checks, a clear
    error for non-scalar ``f``, pytree inputs, jit-compiled once). Matches Captum's
    ``Saliency(abs=False)``.

    Args:
      f: ``f(x, *args) -> scalar`` for one example (the target class is just an argument).

    Returns:
      ``explain(x, *args)`` returning ``df/dx`` with the structure, shape and dtype of ``x``.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> f = lambda v: 5 * v[0] + v[1] ** 2
      >>> jx.gradient(f)(jnp.array([100.0, 5.0]))
      Array([ 5., 10.], dtype=float32)

    References:
      Simonyan, Vedaldi & Zisserman (2013), "Deep Inside Convolutional Networks: Visualising Image
      Classification Models and Saliency Maps", arXiv:1312.6034.
    """
    _checks.check_callable("gradient", "f", f)
    sf = _checks.scalar_output("gradient", f)
    return make_explainer("gradient", f, jax.grad(sf), {})


def saliency(f: Callable) -> Explainer:
    """The saliency map ``|df/dx|`` of Simonyan et al. (Captum's ``Saliency()``, ``abs=True``).

    Args:
      f: ``f(x, *args) -> scalar`` for one example.

    Returns:
      ``explain(x, *args)`` returning ``|df/dx|`` shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> jx.saliency(lambda v: 5 * v[0] - v[1] ** 2)(jnp.array([100.0, 5.0]))
      Array([ 5., 10.], dtype=float32)

    References:
      Simonyan, Vedaldi & Zisserman (2013), "Deep Inside Convolutional Networks: Visualising Image
      Classification Models and Saliency Maps", arXiv:1312.6034.
    """
    _checks.check_callable("saliency", "f", f)
    g = jax.grad(_checks.scalar_output("saliency", f))

    def core(x, *args, **kwargs):
        return _tmap(jnp.abs, g(x, *args, **kwargs))

    return make_explainer("saliency", f, core, {})


def gradient_x_input(f: Callable) -> Explainer:
    """Gradient times input, ``df/dx_d * x_d`` (Captum's ``InputXGradient``).

    For a linear ``f`` with zero bias the attributions sum to ``f(x)``. (One seed lecture prints the
    gradient squared; the standard definition, implemented here, is the plain product.)

    Args:
      f: ``f(x, *args) -> scalar`` for one example.

    Returns:
      ``explain(x, *args)`` returning ``x * df/dx`` shaped like ``x``.

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> jx.gradient_x_input(lambda v: 5 * v[0] + v[1] ** 2)(jnp.array([100.0, 5.0]))
      Array([500.,  50.], dtype=float32)

    References:
      Shrikumar, Greenside, Shcherbina & Kundaje (2016), "Not Just a Black Box: Learning Important
      Features Through Propagating Activation Differences", arXiv:1605.01713.
      Ancona, Ceolini, Oztireli & Gross (2018), "Towards better understanding of gradient-based
      attribution methods for Deep Neural Networks", ICLR.
    """
    _checks.check_callable("gradient_x_input", "f", f)
    g = jax.grad(_checks.scalar_output("gradient_x_input", f))

    def core(x, *args, **kwargs):
        return _tmap(jnp.multiply, g(x, *args, **kwargs), x)

    return make_explainer("gradient_x_input", f, core, {})


def integrated_gradients(
    f: Callable,
    *,
    baseline: Any = 0.0,
    steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int | None = None,
    return_delta: bool = False,
    multiply_by_inputs: bool = True,
) -> Explainer:
    """Integrated gradients: ``(x - b) * integral_0^1 df/dx(b + alpha (x - b)) d alpha``.

    The integral is a quadrature over ``steps`` points of the straight path from the baseline ``b``
    to ``x`` (see :func:`quadrature`). Completeness: the attributions sum to ``f(x) - f(b)`` up to
    the quadrature error, which ``return_delta=True`` reports.

    Args:
      f: ``f(x, *args) -> scalar`` for one example.
      baseline: the reference input: a scalar, an array shaped like ``x`` (or broadcasting to it,
        e.g. one value per channel), a pytree like ``x``, or a callable ``x -> baseline``.
      steps: number of path points (``>= 1``; ``>= 2`` for ``"riemann_trapezoid"``).
      method: the quadrature rule, one of ``"gausslegendre"`` (default, as in Captum),
        ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"``, ``"riemann_trapezoid"``.
      batch_size: at most this many path points are evaluated at once. Under ``jax.vmap`` over
        ``B`` examples a chunk is a batch of ``B * batch_size`` inputs. ``None`` (default)
        chooses chunks of about as many input values as 32 images of 32x32x3, counting the
        vmapped examples, in at most 25 chunks (for 32x32x3 images: chunks of two points for a
        vmapped batch of 64 at 50 steps, 25 points for one example; small inputs: one chunk),
        the fastest measured on CPU (benchmarks/gradients.py); each chunk costs compile time.
        ``batch_size=steps`` evaluates all at once.
      return_delta: if true, ``explain`` returns ``(attribution, delta)`` with the completeness
        error ``delta = sum(attribution) - (f(x) - f(b))``, like Captum's
        ``return_convergence_delta``.
      multiply_by_inputs: if false, the "global" attribution (Ancona et al. 2018): the mean
        gradient along the path, without the factor ``(x - baseline)`` (Captum's
        ``multiply_by_inputs=False``); it has no completeness gap, so ``return_delta`` needs true.

    Returns:
      ``explain(x, *args)`` returning the attribution shaped like ``x`` (and ``delta``).

    Example:
      >>> import jax.numpy as jnp, jaxplain as jx
      >>> f = lambda v: 5 * v[0] + v[1] ** 2
      >>> attr, delta = jx.integrated_gradients(f, steps=8, return_delta=True)(jnp.array([100.0, 5.0]))
      >>> [round(float(a), 3) for a in attr], abs(float(delta)) < 1e-3
      ([500.0, 25.0], True)

    References:
      Sundararajan, Taly & Yan (2017), "Axiomatic Attribution for Deep Networks", ICML.
    """
    name = "integrated_gradients"
    _checks.check_callable(name, "f", f)
    opts = _paths.path_options(name, baseline=baseline, steps=steps, method=method, batch_size=batch_size)
    return_delta = _checks.check_bool(name, "return_delta", return_delta)
    multiply = _checks.check_multiply_by_inputs(name, multiply_by_inputs, return_delta=return_delta)
    sf = _checks.scalar_output(name, f)

    def core(x, *args, **kwargs):
        path = _paths.straight_path(name, baseline, x)
        attr = _paths.integrated_gradients(sf, path, opts, args, kwargs, x, multiply=multiply)
        if not return_delta:
            return attr
        delta = _paths.tree_total(attr) - (sf(x, *args, **kwargs) - sf(path.start, *args, **kwargs))
        return attr, delta

    options = dict(baseline=baseline, steps=opts.steps, method=opts.method, batch_size=opts.batch_size)
    if return_delta:
        options["return_delta"] = True
    if not multiply:
        options["multiply_by_inputs"] = False
    return make_explainer(name, f, core, options)


_SMOOTHGRAD_KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")


def smoothgrad(
    explainer: Callable,
    *,
    samples: int = 50,
    sigma: float = 0.15,
    relative: bool = True,
    kind: str = "smoothgrad",
    batch_size: int | None = None,
) -> Explainer:
    """SmoothGrad, SmoothGrad-squared and VarGrad around ANY explainer (Captum's ``NoiseTunnel``).

    Averages an explanation over ``samples`` noisy copies ``x + eps``, ``eps ~ N(0, std^2)``:

    * ``"smoothgrad"``: ``mean(a)``; ``"smoothgrad_sq"``: ``mean(a^2)``;
    * ``"vargrad"``: ``mean(a^2) - mean(a)^2`` (the variance, as in Captum).

    The noise scale: with ``relative=True`` (default, Smilkov et al.'s "noise level")
    ``std = sigma * (max(x) - min(x))``, taken per example and per leaf of ``x``; with
    ``relative=False``, ``std = sigma`` in the input's units (Captum's ``stdevs``).

    The returned explainer is random: call it with ``key=``. A wrapped explainer that is itself
    random (e.g. :func:`expected_gradients`) gets an independent key for each sample. The draw:
    sample ``i`` takes ``k_noise, k_inner = jax.random.split(jax.random.split(key, samples)[i])``;
    leaf ``j`` of ``x`` gets ``jax.random.normal(jax.random.split(k_noise, n_leaves)[j], shape)``
    drawn under ``jax.threefry_partitionable(False)`` (JAX's classic stream, a third of the cost
    of the default one on CPU), and the wrapped explainer ``key=k_inner``.

    Args:
      explainer: ``explainer(x, *args) -> attribution``, e.g. ``jx.gradient(f)``.
      samples: number of noisy samples (``>= 1``).
      sigma: noise scale (``>= 0``), relative or absolute per ``relative``.
      relative: whether ``sigma`` is a fraction of the input's range.
      kind: ``"smoothgrad"``, ``"smoothgrad_sq"`` or ``"vargrad"``.
      batch_size: at most this many samples are explained at once (``None``: chosen as in
        :func:`integrated_gradients`; ``samples`` for all at once).

    Returns:
      ``explain(x, *args, key)`` returning the smoothed attribution shaped like ``x``.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> f = lambda v: jnp.sum(v ** 2)
      >>> sg = jx.smoothgrad(jx.gradient(f), samples=1000, sigma=0.5, relative=False)
      >>> bool(jnp.allclose(sg(jnp.ones(3), key=jax.random.key(0)), 2.0, atol=0.1))
      True

    References:
      Smilkov, Thorat, Kim, Viegas & Wattenberg (2017), "SmoothGrad: removing noise by adding
      noise", arXiv:1706.03825.
      Adebayo, Gilmer, Goodfellow & Kim (2018), "Local Explanation Methods for Deep Neural Networks
      Lack Sensitivity to Parameter Values", ICLR workshop (VarGrad).
    """
    name = "smoothgrad"
    _checks.check_callable(name, "explainer", explainer)
    samples = _checks.check_int(name, "samples", samples, minimum=1)
    sigma = _checks.check_float(name, "sigma", sigma, minimum=0.0)
    relative = _checks.check_bool(name, "relative", relative)
    kind = _checks.check_choice(name, "kind", kind, _SMOOTHGRAD_KINDS)
    batch_size = _checks.check_batch_size(name, batch_size)
    inner_random = _checks.accepts_key(explainer)
    # The mean of plain gradients is linear in them: it can be summed at f's affine input layer
    # and sent back through it once (jaxplain/_interpret/affine.py), as integrated gradients does.
    inner_f = None
    if kind == "smoothgrad" and isinstance(explainer, Explainer) and explainer.method == "gradient":
        inner_f = _checks.scalar_output(explainer.method, explainer.f)  # its errors, its name

    def core(x, *args, key, **kwargs):
        leaves, treedef = jax.tree_util.tree_flatten(x)
        if relative:
            stds = [sigma * (jnp.max(leaf) - jnp.min(leaf)) for leaf in leaves]
        else:
            stds = [jnp.asarray(sigma, leaf.dtype) for leaf in leaves]
        split = None
        if inner_f is not None and samples >= _paths.SPLIT_MIN_POINTS:
            split = affine.split(inner_f, x, args, kwargs)

        def one(k):
            k_noise, k_inner = jax.random.split(k)
            k_leaves = jax.random.split(k_noise, len(leaves))
            noisy = [
                leaf + (std * _paths.normal(kl, leaf.shape, leaf.dtype)).astype(leaf.dtype)
                for leaf, std, kl in zip(leaves, stds, k_leaves)
            ]
            noisy = jax.tree_util.tree_unflatten(treedef, noisy)
            if split is not None:
                return jax.grad(split.rest)(split.prefix(noisy))
            extra = {"key": k_inner} if inner_random else {}
            a = _check_attribution(name, explainer, explainer(noisy, *args, **extra, **kwargs), x)
            if kind == "smoothgrad":
                return a
            return a, _tmap(jnp.square, a)

        sums = _paths.chunked_sum(one, jax.random.split(key, samples), batch_size=batch_size, like=x)
        if split is not None:
            (sums,) = jax.vjp(split.prefix, x)[1](sums)
        if kind == "smoothgrad":
            return _paths.cast_like(_tmap(lambda s: s / samples, sums), x)
        s1, s2 = sums
        mean_sq = _tmap(lambda s: s / samples, s2)
        if kind == "smoothgrad_sq":
            return _paths.cast_like(mean_sq, x)
        return _paths.cast_like(_tmap(lambda q, s: q - (s / samples) ** 2, mean_sq, s1), x)

    options = dict(samples=samples, sigma=sigma, relative=relative, kind=kind, batch_size=batch_size)
    return make_explainer(name, explainer, core, options, needs_key=True)


def _check_attribution(name: str, explainer: Callable, a: Any, x: Any) -> Any:
    """A wrapped explainer returns an attribution (shaped like x, or like a layer or a map), not
    f's scalar output: a scalar for a non-scalar x means a model function was passed."""
    scalar = all(jnp.shape(leaf) == () for leaf in jax.tree_util.tree_leaves(a))
    if scalar and any(jnp.ndim(leaf) > 0 for leaf in jax.tree_util.tree_leaves(x)):
        what = getattr(explainer, "__name__", type(explainer).__name__)
        raise TypeError(
            f"jaxplain.{name}: explainer must return an attribution, but {what}(x, *args) returned "
            f"a scalar for x of shape {jax.tree_util.tree_map(jnp.shape, x)}: it looks like the "
            f"model's function f. {name} wraps an explainer: pass e.g. "
            f"jaxplain.{name}(jaxplain.gradient(f))."
        )
    return a


def expected_gradients(
    f: Callable,
    *,
    baselines: Any,
    samples: int = 50,
    sigma: float = 0.0,
    batch_size: int | None = None,
    multiply_by_inputs: bool = True,
) -> Explainer:
    """Expected gradients / gradient SHAP: integrated gradients averaged over a reference set.

    Each of ``samples`` draws picks a baseline ``b`` uniformly from ``baselines``, a point
    ``alpha ~ U(0, 1)`` on the path and (if ``sigma > 0``) input noise ``eps ~ N(0, sigma^2)``, and
    contributes ``(x' - b) * df/dx(b + alpha (x' - b))`` with ``x' = x + eps``; the attribution is
    the mean. Its expectation sums to ``f(x) - E_b[f(b)]``. With ``sigma=0`` this is expected
    gradients (Erion et al.); Captum's ``GradientShap`` is the same estimator with
    ``n_samples=samples`` and ``stdevs=sigma`` (absolute, in the input's units).

    Args:
      f: ``f(x, *args) -> scalar`` for one example.
      baselines: the reference set: an array of shape ``(M,) + x.shape`` (or a pytree like ``x``
        whose leaves carry a leading axis of ``M``), e.g. a sample of training inputs.
      samples: number of Monte-Carlo draws (``>= 1``).
      sigma: standard deviation of the input noise (``>= 0``), absolute.
      batch_size: at most this many draws are evaluated at once (``None``: chosen as in
        :func:`integrated_gradients`; ``samples`` for all at once).
      multiply_by_inputs: if false, the mean of the gradients at the drawn points, without the
        factor ``(x' - b)`` (Captum's ``GradientShap(multiply_by_inputs=False)``).

    Returns:
      ``explain(x, *args, key)`` returning the attribution shaped like ``x``.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> w = jnp.array([1.0, -2.0, 3.0])
      >>> eg = jx.expected_gradients(lambda v: w @ v, baselines=jnp.zeros((4, 3)), samples=8)
      >>> eg(jnp.ones(3), key=jax.random.key(0))
      Array([ 1., -2.,  3.], dtype=float32)

    References:
      Erion, Janizek, Sturmfels, Lundberg & Lee (2021), "Improving performance of deep learning
      models with axiomatic attribution priors and expected gradients", Nature Machine Intelligence.
      Lundberg & Lee (2017), "A Unified Approach to Interpreting Model Predictions", NeurIPS.
    """
    return _expected_gradients("expected_gradients", f, baselines, samples, sigma, batch_size,
                               multiply_by_inputs)


def _expected_gradients(name, f, baselines, samples, sigma, batch_size, multiply_by_inputs):
    _checks.check_callable(name, "f", f)
    multiply = _checks.check_multiply_by_inputs(name, multiply_by_inputs)
    samples = _checks.check_int(name, "samples", samples, minimum=1)
    sigma = _checks.check_float(name, "sigma", sigma, minimum=0.0)
    batch_size = _checks.check_batch_size(name, batch_size)
    refs = _checks.check_reference_set(name, baselines)
    n_refs = jax.tree_util.tree_leaves(refs)[0].shape[0]
    grad_f = jax.grad(_checks.scalar_output(name, f))

    def core(x, *args, key, **kwargs):
        leaves, treedef = jax.tree_util.tree_flatten(x)
        ref_leaves = _checks.check_reference_shapes(name, refs, x)

        def one(k):
            xs, bs, point, _ = _paths.shap_draw(k, leaves, ref_leaves, n_refs, sigma)
            diffs = [xi - bi for xi, bi in zip(xs, bs)]
            g = grad_f(jax.tree_util.tree_unflatten(treedef, point), *args, **kwargs)
            if not multiply:
                return g
            return _tmap(jnp.multiply, jax.tree_util.tree_unflatten(treedef, diffs), g)

        total = _paths.chunked_sum(one, jax.random.split(key, samples), batch_size=batch_size, like=x)
        return _paths.cast_like(_tmap(lambda s: s / samples, total), x)

    options = dict(baselines=baselines, samples=samples, sigma=sigma, batch_size=batch_size)
    if not multiply:
        options["multiply_by_inputs"] = False
    return make_explainer(name, f, core, options, needs_key=True)


def gradient_shap(
    f: Callable,
    *,
    baselines: Any,
    samples: int = 5,
    sigma: float = 0.0,
    batch_size: int | None = None,
    multiply_by_inputs: bool = True,
) -> Explainer:
    """Gradient SHAP with Captum's defaults: :func:`expected_gradients` with ``samples=5``.

    The same estimator as :func:`expected_gradients` (see there); only the default number of draws
    differs, matching Captum's ``GradientShap(n_samples=5, stdevs=0.0)``.

    Example:
      >>> import jax, jax.numpy as jnp, jaxplain as jx
      >>> gs = jx.gradient_shap(lambda v: jnp.sum(3 * v), baselines=jnp.zeros((2, 2)))
      >>> gs(jnp.ones(2), key=jax.random.key(1))
      Array([3., 3.], dtype=float32)

    References:
      Lundberg & Lee (2017), "A Unified Approach to Interpreting Model Predictions", NeurIPS.
    """
    return _expected_gradients("gradient_shap", f, baselines, samples, sigma, batch_size,
                               multiply_by_inputs)
