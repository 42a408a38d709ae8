"""The gradient family: gradient, saliency, gradient x input, integrated gradients, SmoothGrad /
VarGrad, expected gradients (gradient SHAP), and the quadrature rules integrated gradients uses."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain import _affine
from jaxplain import _contract as C

__all__ = [
    "gradient",
    "saliency",
    "gradient_x_input",
    "integrated_gradients",
    "smoothgrad",
    "expected_gradients",
    "gradient_shap",
    "quadrature",
    "IG_METHODS",
]

_tmap = jax.tree_util.tree_map
# From this many path points (or noise samples) on, integrated gradients (and SmoothGrad of the
# gradient) send the summed gradients back through f's affine input layer once
# (jaxplain/_affine.py); below, once per point costs no more.
_SPLIT_MIN_STEPS = 3


def _normal(key, shape, dtype):
    """``jax.random.normal`` drawn on JAX's classic threefry stream (``jax.threefry_partitionable
    (False)``: one threefry hash per two values instead of one per value), whatever the global
    setting. Noise is the per-sample cost SmoothGrad adds to a gradient: on XLA:CPU this draw took
    a third of the time, and SmoothGrad of a small CNN 0.89-0.95x as long (benchmarks/README.md).
    Each explainer's noise is drawn per example (vmapped keys), never as one array to partition."""
    with jax.threefry_partitionable(False):
        return jax.random.normal(key, shape, dtype)


IG_METHODS = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
)


def _tree_total(tree) -> jax.Array:
    return sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(tree))


def gradient(f: Callable) -> C.Explainer:
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
    C.check_callable("gradient", "f", f)
    sf = C.scalar_output("gradient", f)
    return C.make_explainer("gradient", f, jax.grad(sf), {})


def saliency(f: Callable) -> C.Explainer:
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
    C.check_callable("saliency", "f", f)
    g = jax.grad(C.scalar_output("saliency", f))

    def core(x, *args, **kwargs):
        return _tmap(jnp.abs, g(x, *args, **kwargs))

    return C.make_explainer("saliency", f, core, {})


def gradient_x_input(f: Callable) -> C.Explainer:
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
    C.check_callable("gradient_x_input", "f", f)
    g = jax.grad(C.scalar_output("gradient_x_input", f))

    def core(x, *args, **kwargs):
        return _tmap(jnp.multiply, g(x, *args, **kwargs), x)

    return C.make_explainer("gradient_x_input", f, core, {})


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points ``alpha`` in [0, 1] and weights of a rule for integrals over [0, 1], in float64.

    * ``"riemann_left"``: ``alpha = k / n``, ``k = 0..n-1``, weights ``1/n``.
    * ``"riemann_right"``: ``alpha = (k + 1) / n``, weights ``1/n``.
    * ``"riemann_middle"``: ``alpha = (k + 1/2) / n``, weights ``1/n``.
    * ``"riemann_trapezoid"``: ``alpha = k / (n - 1)``, ``k = 0..n-1``, weights ``1/(n-1)`` with
      both ends halved, so they sum to 1 (needs ``n >= 2``). Captum's rule of the same name uses
      weights ``1/n`` with halved ends, which sum to ``(n-1)/n``: Captum's trapezoid attributions
      are ours times ``(n-1)/n``.
    * ``"gausslegendre"``: Gauss-Legendre nodes and weights mapped from [-1, 1] to [0, 1]; exact for
      polynomials of degree ``2n - 1``.

    Example:
      >>> import jaxplain as jx
      >>> alphas, weights = jx.quadrature("riemann_trapezoid", 3)
      >>> alphas.tolist(), weights.tolist()
      ([0.0, 0.5, 1.0], [0.25, 0.5, 0.25])

    References:
      Sundararajan, Taly & Yan (2017), "Axiomatic Attribution for Deep Networks", ICML.
    """
    method = C.check_choice("quadrature", "method", method, IG_METHODS)
    n = C.check_int("quadrature", "steps", steps, minimum=2 if method == "riemann_trapezoid" else 1)
    k = np.arange(n, dtype=np.float64)
    if method == "riemann_left":
        return k / n, np.full(n, 1.0 / n)
    if method == "riemann_right":
        return (k + 1) / n, np.full(n, 1.0 / n)
    if method == "riemann_middle":
        return (k + 0.5) / n, np.full(n, 1.0 / n)
    if method == "riemann_trapezoid":
        w = np.full(n, 1.0 / (n - 1))
        w[0] = w[-1] = 0.5 / (n - 1)
        return k / (n - 1), w
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return (nodes + 1.0) / 2.0, weights / 2.0


def integrated_gradients(
    f: Callable,
    *,
    baseline: Any = 0.0,
    steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int | None = None,
    return_delta: bool = False,
) -> C.Explainer:
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
      batch_size: at most this many path points are evaluated at once (``None``: all ``steps``).
        Under ``jax.vmap`` over ``B`` examples a chunk is a batch of ``B * batch_size`` inputs; on
        CPU chunks of about 64 inputs ran fastest (benchmarks/gradients.py), e.g.
        ``batch_size=1`` for a vmapped batch of 64. XLA:CPU's default schedule may still run
        several chunks side by side; compiled with :func:`jaxplain.compiler_options` it runs
        them one after another.
      return_delta: if true, ``explain`` returns ``(attribution, delta)`` with the completeness
        error ``delta = sum(attribution) - (f(x) - f(b))``, like Captum's
        ``return_convergence_delta``.

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
    C.check_callable(name, "f", f)
    method = C.check_choice(name, "method", method, IG_METHODS)
    steps = C.check_int(name, "steps", steps, minimum=2 if method == "riemann_trapezoid" else 1)
    batch_size = C.check_batch_size(name, batch_size)
    if not isinstance(return_delta, bool):
        raise TypeError(f"jaxplain.{name}: return_delta must be a bool, got {return_delta!r}.")
    if not callable(baseline):
        _check_baseline_value(name, baseline)
    alphas64, weights64 = quadrature(method, steps)
    sf = C.scalar_output(name, f)
    grad_f = jax.grad(sf)

    def core(x, *args, **kwargs):
        b, diff, dtype = C.straight_path(name, baseline, x)
        alphas = jnp.asarray(alphas64, dtype)
        weights = jnp.asarray(weights64, dtype)

        split = _affine.split(sf, x, args, kwargs) if steps >= _SPLIT_MIN_STEPS else None
        if split is None:

            def weighted_grad(aw):
                a, w = aw
                point = C.path_point(b, diff, a)
                return _tmap(lambda g: w.astype(g.dtype) * g, grad_f(point, *args, **kwargs))

            avg_grad = C.chunked_sum(weighted_grad, (alphas, weights), batch_size=batch_size)
        else:
            # f = rest(prefix(x)) with prefix affine: prefix on the path is z_b + a dz, and the
            # gradients are summed at the boundary and sent back through prefix once.
            z_b, lin = jax.linearize(split.prefix, b)  # prefix evaluated once, at b
            dz, pull = lin(diff), jax.linear_transpose(lin, b)
            grad_rest = jax.grad(split.rest)

            def weighted_grad(aw):
                a, w = aw
                z = [zb + a.astype(zb.dtype) * d for zb, d in zip(z_b, dz)]
                return [w.astype(g.dtype) * g for g in grad_rest(z)]

            total = C.chunked_sum(weighted_grad, (alphas, weights), batch_size=batch_size)
            (avg_grad,) = pull(total)
        attr = C.cast_like(_tmap(jnp.multiply, diff, avg_grad), x)
        if not return_delta:
            return attr
        delta = _tree_total(attr) - (sf(x, *args, **kwargs) - sf(b, *args, **kwargs))
        return attr, delta

    options = dict(baseline=baseline, steps=steps, method=method, batch_size=batch_size)
    if return_delta:
        options["return_delta"] = True
    return C.make_explainer(name, f, core, options)


def _check_baseline_value(method: str, value: Any) -> None:
    for leaf in jax.tree_util.tree_leaves(value):
        arr = np.asarray(leaf) if not isinstance(leaf, jax.Array) else leaf
        if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
            raise TypeError(
                f"jaxplain.{method}: baseline must be numeric, got dtype {arr.dtype}."
            )
        if not C.all_finite(leaf):
            raise ValueError(f"jaxplain.{method}: baseline contains NaN or Inf.")


_SMOOTHGRAD_KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")


def smoothgrad(
    explainer: Callable,
    *,
    samples: int = 50,
    sigma: float = 0.15,
    relative: bool = True,
    kind: str = "smoothgrad",
    batch_size: int | None = None,
) -> C.Explainer:
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
      batch_size: at most this many samples are explained at once (``None``: all).

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
    C.check_callable(name, "explainer", explainer)
    samples = C.check_int(name, "samples", samples, minimum=1)
    sigma = C.check_float(name, "sigma", sigma, minimum=0.0)
    if not isinstance(relative, bool):
        raise TypeError(f"jaxplain.{name}: relative must be a bool, got {relative!r}.")
    kind = C.check_choice(name, "kind", kind, _SMOOTHGRAD_KINDS)
    batch_size = C.check_batch_size(name, batch_size)
    inner_random = C.accepts_key(explainer)
    # The mean of plain gradients is linear in them: it can be summed at f's affine input layer
    # and sent back through it once (jaxplain/_affine.py), as integrated gradients does.
    inner_f = None
    if kind == "smoothgrad" and isinstance(explainer, C.Explainer) and explainer.method == "gradient":
        inner_f = C.scalar_output(explainer.method, explainer.f)  # its errors, its name

    def core(x, *args, key, **kwargs):
        leaves, treedef = jax.tree_util.tree_flatten(x)
        if relative:
            stds = [sigma * (jnp.max(leaf) - jnp.min(leaf)) for leaf in leaves]
        else:
            stds = [jnp.asarray(sigma, leaf.dtype) for leaf in leaves]
        split = None
        if inner_f is not None and samples >= _SPLIT_MIN_STEPS:
            split = _affine.split(inner_f, x, args, kwargs)

        def one(k):
            k_noise, k_inner = jax.random.split(k)
            k_leaves = jax.random.split(k_noise, len(leaves))
            noisy = [
                leaf + (std * _normal(kl, leaf.shape, leaf.dtype)).astype(leaf.dtype)
                for leaf, std, kl in zip(leaves, stds, k_leaves)
            ]
            noisy = jax.tree_util.tree_unflatten(treedef, noisy)
            if split is not None:
                return jax.grad(split.rest)(split.prefix(noisy))
            extra = {"key": k_inner} if inner_random else {}
            a = explainer(noisy, *args, **extra, **kwargs)
            if kind == "smoothgrad":
                return a
            return a, _tmap(jnp.square, a)

        sums = C.chunked_sum(one, jax.random.split(key, samples), batch_size=batch_size)
        if split is not None:
            (sums,) = jax.vjp(split.prefix, x)[1](sums)
        if kind == "smoothgrad":
            return C.cast_like(_tmap(lambda s: s / samples, sums), x)
        s1, s2 = sums
        mean_sq = _tmap(lambda s: s / samples, s2)
        if kind == "smoothgrad_sq":
            return C.cast_like(mean_sq, x)
        return C.cast_like(_tmap(lambda q, s: q - (s / samples) ** 2, mean_sq, s1), x)

    options = dict(samples=samples, sigma=sigma, relative=relative, kind=kind, batch_size=batch_size)
    return C.make_explainer(name, explainer, core, options, needs_key=True)


def expected_gradients(
    f: Callable,
    *,
    baselines: Any,
    samples: int = 50,
    sigma: float = 0.0,
    batch_size: int | None = None,
) -> C.Explainer:
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
      batch_size: at most this many draws are evaluated at once (``None``: all).

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
    return _expected_gradients("expected_gradients", f, baselines, samples, sigma, batch_size)


def _expected_gradients(name, f, baselines, samples, sigma, batch_size) -> C.Explainer:
    C.check_callable(name, "f", f)
    samples = C.check_int(name, "samples", samples, minimum=1)
    sigma = C.check_float(name, "sigma", sigma, minimum=0.0)
    batch_size = C.check_batch_size(name, batch_size)
    refs = _check_reference_set(name, baselines)
    n_refs = jax.tree_util.tree_leaves(refs)[0].shape[0]
    grad_f = jax.grad(C.scalar_output(name, f))

    def core(x, *args, key, **kwargs):
        leaves, treedef = jax.tree_util.tree_flatten(x)
        ref_leaves = jax.tree_util.tree_leaves(refs)
        if len(ref_leaves) != len(leaves):
            raise ValueError(
                f"jaxplain.{name}: baselines has {len(ref_leaves)} leaves but x has {len(leaves)}; "
                f"pass a pytree like x whose leaves have a leading reference axis."
            )
        for r, leaf in zip(ref_leaves, leaves):
            if r.shape[1:] != leaf.shape:
                raise ValueError(
                    f"jaxplain.{name}: baselines of shape {r.shape} do not fit x of shape "
                    f"{leaf.shape}; expected (M,) + {leaf.shape}, a reference set of M inputs."
                )
        ref_leaves = [jnp.asarray(r, leaf.dtype) for r, leaf in zip(ref_leaves, leaves)]

        def one(k):
            k_idx, k_alpha, k_noise = jax.random.split(k, 3)
            idx = jax.random.randint(k_idx, (), 0, n_refs)
            alpha = jax.random.uniform(k_alpha, (), leaves[0].dtype)
            k_leaves = jax.random.split(k_noise, len(leaves))
            xs = [
                leaf + sigma * _normal(kl, leaf.shape, leaf.dtype) if sigma > 0 else leaf
                for leaf, kl in zip(leaves, k_leaves)
            ]
            bs = [r[idx] for r in ref_leaves]
            diffs = [xi - bi for xi, bi in zip(xs, bs)]
            point = [bi + alpha.astype(d.dtype) * d for bi, d in zip(bs, diffs)]
            g = grad_f(jax.tree_util.tree_unflatten(treedef, point), *args, **kwargs)
            return _tmap(jnp.multiply, jax.tree_util.tree_unflatten(treedef, diffs), g)

        total = C.chunked_sum(one, jax.random.split(key, samples), batch_size=batch_size)
        return C.cast_like(_tmap(lambda s: s / samples, total), x)

    options = dict(baselines=baselines, samples=samples, sigma=sigma, batch_size=batch_size)
    return C.make_explainer(name, f, core, options, needs_key=True)


def _check_reference_set(method: str, baselines: Any) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten(baselines)
    if not leaves:
        raise ValueError(
            f"jaxplain.{method}: baselines is empty; pass a reference set of shape (M,) + x.shape "
            f"with M >= 1, e.g. a sample of training inputs."
        )
    out = []
    for leaf in leaves:
        arr = leaf if isinstance(leaf, jax.Array) else np.asarray(leaf)
        if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
            raise TypeError(f"jaxplain.{method}: baselines must be numeric, got dtype {arr.dtype}.")
        if arr.ndim < 1 or arr.shape[0] == 0:
            raise ValueError(
                f"jaxplain.{method}: baselines of shape {arr.shape} hold no reference inputs; pass "
                f"an array of shape (M,) + x.shape with M >= 1."
            )
        if not C.all_finite(arr):
            raise ValueError(f"jaxplain.{method}: baselines contain NaN or Inf.")
        out.append(arr)
    sizes = {a.shape[0] for a in out}
    if len(sizes) != 1:
        raise ValueError(
            f"jaxplain.{method}: every leaf of baselines needs the same number of reference inputs "
            f"along axis 0, got {sorted(sizes)}."
        )
    return jax.tree_util.tree_unflatten(treedef, out)


def gradient_shap(
    f: Callable,
    *,
    baselines: Any,
    samples: int = 5,
    sigma: float = 0.0,
    batch_size: int | None = None,
) -> C.Explainer:
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
    return _expected_gradients("gradient_shap", f, baselines, samples, sigma, batch_size)
