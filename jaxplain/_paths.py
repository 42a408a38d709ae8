"""Many points at once: straight paths, quadrature rules, and the chunked evaluation engine.

Path methods (integrated gradients and its layer and neuron variants, conductance, internal
influence) and sampling methods (SmoothGrad, expected gradients, DeepLIFT-SHAP) evaluate a function
at many points. This module holds what they share:

* :func:`quadrature`, the rules for integrals over ``[0, 1]``, and :func:`path_options`, which
  checks a path method's options and returns its rule;
* :func:`broadcast_like` and :func:`straight_path`, resolving a baseline against ``x``;
* :func:`chunked_sum` and :func:`chunked_map`, which evaluate a function at many points in chunks
  of ``batch_size`` so memory stays bounded;
* :func:`path_integral`, the weighted sum ``sum_k w_k fn(start + alpha_k delta)`` every path
  method is written with, and :func:`gradient_integral`, its case ``fn = df/dx``, which sends the
  summed gradients back through ``f``'s affine input layer once.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain import _checks, _compile
from jaxplain._interpret import affine

__all__ = [
    "AUTO_MAX_CHUNKS",
    "CHUNK_VALUES",
    "IG_METHODS",
    "MAX_UNROLLED_CHUNKS",
    "Path",
    "PathOptions",
    "auto_batch_size",
    "broadcast_like",
    "cast_like",
    "chunked_map",
    "chunked_sum",
    "gradient_integral",
    "integrated_gradients",
    "normal",
    "path_integral",
    "path_map",
    "path_options",
    "quadrature",
    "shap_draw",
    "straight_path",
    "tree_total",
]

_tmap = jax.tree_util.tree_map

# Chunks up to this many are unrolled in the traced program; more chunks run in a `lax.scan`.
# Measured on XLA:CPU (benchmarks/gradients.py: 4-conv CNN, 32x32x3, 64 images, 50 IG steps, 2
# cores): 50 unrolled chunks of 64 images ran at 0.93x the floor of 50 batched gradients, a
# `lax.scan` over the same chunks at 10x (XLA:CPU runs convolutions inside loops far slower), and
# all 3200 points at once at 2.1x (past ~64 images XLA:CPU's per-image cost grows 1.4x). Unrolling
# costs compile time, about 0.07 s a chunk on that CNN, so past this count the loop is the trade.
MAX_UNROLLED_CHUNKS = 64

# ``batch_size=None`` evaluates about this many input values per chunk (32 inputs of 32x32x3),
# counting every example of the enclosing ``vmap``s (:func:`auto_batch_size`). Measured on XLA:CPU
# (2 cores, 50 IG steps, 32x32x3 inputs, the benchmark CNN and a 32-32-64-64 CNN with a 256-unit
# dense layer): the cost per input was lowest at 8-64 inputs per chunk and rose 1.2-1.4x at
# 400-3200; below 8 (one example, chunks of 1-5 points) the per-chunk overhead cost up to 1.9x.
# Counting values rather than inputs leaves small inputs in one chunk (a 3-vector function on
# 20000 samples: one chunk, not 25 to compile). It makes at most AUTO_MAX_CHUNKS chunks: each
# unrolled chunk costs compile time (0.07 s for IG, 0.2 s for SmoothGrad on the benchmark CNN:
# 50 chunks compiled in 3.7 s and 11.7 s), and 25 chunks of two points for 64 images ran within
# 1.05x of 50 chunks of one; past MAX_UNROLLED_CHUNKS a `lax.scan` would run 13x slower.
CHUNK_VALUES = 32 * 32 * 32 * 3
AUTO_MAX_CHUNKS = 25

IG_METHODS = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
)


# --------------------------------------------------------------------------- quadrature


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
    method = _checks.check_choice("quadrature", "method", method, IG_METHODS)
    n = _checks.check_int("quadrature", "steps", steps, minimum=2 if method == "riemann_trapezoid" else 1)
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


class PathOptions(NamedTuple):
    """A path method's checked options and its quadrature rule (float64 points and weights)."""

    steps: int
    method: str
    batch_size: int | None
    alphas: np.ndarray
    weights: np.ndarray


def path_options(where: str, *, baseline: Any, steps: Any, method: Any, batch_size: Any,
                 extra_points: int = 0) -> PathOptions:
    """Checks the options every path method takes; the rule has ``steps + extra_points`` points."""
    method = _checks.check_choice(where, "method", method, IG_METHODS)
    steps = _checks.check_int(where, "steps", steps, minimum=2 if method == "riemann_trapezoid" else 1)
    batch_size = _checks.check_batch_size(where, batch_size)
    _checks.check_baseline(where, baseline)
    alphas, weights = quadrature(method, steps + extra_points)
    return PathOptions(steps, method, batch_size, alphas, weights)


# --------------------------------------------------------------------------- straight paths


def broadcast_like(where: str, name: str, value: Any, x: Any) -> Any:
    """Resolves a baseline-like option (scalar, array, pytree like x, or callable) against ``x``."""
    if callable(value):
        value = value(x)
    x_leaves, x_def = jax.tree_util.tree_flatten(x)
    if isinstance(value, (int, float)) or (hasattr(value, "ndim") and jnp.ndim(value) == 0):
        return _tmap(lambda leaf: jnp.full_like(leaf, value), x)
    v_leaves, v_def = jax.tree_util.tree_flatten(value)
    if v_def != x_def:
        if len(v_leaves) == 1 and len(x_leaves) > 1:
            raise ValueError(
                f"jaxplain.{where}: {name} is a single array but x is a pytree {x_def}; pass a "
                f"scalar, a pytree of the same structure as x, or a callable x -> {name}."
            )
        raise ValueError(
            f"jaxplain.{where}: {name} has structure {v_def} but x has {x_def}; they must match."
        )
    out = []
    for v, leaf in zip(v_leaves, x_leaves):
        v = jnp.asarray(v)
        try:
            ok = jnp.broadcast_shapes(v.shape, leaf.shape) == leaf.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"jaxplain.{where}: {name} of shape {v.shape} does not fit x of shape {leaf.shape}; "
                f"pass a scalar, an array of x's shape (or one that broadcasts to it), or a callable "
                f"x -> {name}."
            )
        out.append(jnp.broadcast_to(v, leaf.shape).astype(leaf.dtype))
    return jax.tree_util.tree_unflatten(x_def, out)


class Path(NamedTuple):
    """The straight path ``start + alpha * delta``, ``alpha`` in [0, 1], in ``dtype``."""

    start: Any
    delta: Any
    dtype: Any


def straight_path(where: str, baseline: Any, x: Any) -> Path:
    """The straight path from a baseline (resolved by :func:`broadcast_like`) to ``x``."""
    b = broadcast_like(where, "baseline", baseline, x)
    return between(b, x)


def between(a: Any, b: Any) -> Path:
    """The straight path from the pytree ``a`` to ``b``."""
    return Path(a, _tmap(jnp.subtract, b, a), jnp.result_type(*jax.tree_util.tree_leaves(b)))


def path_point(start: Any, delta: Any, alpha: jax.Array) -> Any:
    """``start + alpha * delta`` leaf by leaf, in each leaf's dtype."""
    return _tmap(lambda s, d: s + alpha.astype(d.dtype) * d, start, delta)


def path_integral(fn: Callable, path: Path, alphas: np.ndarray, weights: np.ndarray, *,
                  batch_size: int | None, like: Any = None) -> Any:
    """``sum_k weights[k] * fn(start + alphas[k] * delta)``, evaluated by :func:`chunked_sum`
    (``like``, default the path's points, sizes the automatic chunks)."""

    def weighted(aw):
        a, w = aw
        return _tmap(lambda g: w.astype(g.dtype) * g, fn(path_point(path.start, path.delta, a)))

    points = (jnp.asarray(alphas, path.dtype), jnp.asarray(weights, path.dtype))
    return chunked_sum(weighted, points, batch_size=batch_size,
                       like=path.delta if like is None else like)


# From this many path points on, the gradient integral sends the summed gradients back through f's
# affine input layer once (jaxplain/_interpret/affine.py); below, once per point costs no more.
SPLIT_MIN_POINTS = 3


def gradient_integral(f: Callable, path: Path, opts: PathOptions, args: tuple = (),
                      kwargs: dict | None = None) -> Any:
    """``sum_k w_k df/dx(start + alpha_k delta)`` for a scalar ``f(x, *args, **kwargs)``.

    Nearly every model starts with an affine map of its input; along a line it needs no
    re-evaluation (see :mod:`jaxplain._interpret.affine`). So ``f = rest(prefix(x))`` is split
    there when the program allows: ``prefix`` runs at the path's start and its linear part once on
    ``delta``, each point is evaluated by ``rest`` alone, and the weighted gradients are summed
    at the boundary and pulled back through ``prefix`` once. The result equals the per-point
    definition to rounding.
    """
    kwargs = {} if kwargs is None else kwargs
    split = None
    if len(opts.alphas) >= SPLIT_MIN_POINTS:
        split = affine.split(f, path.start, args, kwargs)
    if split is None:
        grad_f = jax.grad(f)
        return path_integral(lambda p: grad_f(p, *args, **kwargs), path, opts.alphas, opts.weights,
                             batch_size=opts.batch_size)
    z_b, lin = jax.linearize(split.prefix, path.start)  # prefix evaluated once, at the start
    dz, pull = lin(path.delta), jax.linear_transpose(lin, path.start)
    inner = Path(z_b, dz, path.dtype)
    total = path_integral(jax.grad(split.rest), inner, opts.alphas, opts.weights,
                          batch_size=opts.batch_size, like=path.delta)  # chunks sized by x
    (avg,) = pull(total)
    return avg


def integrated_gradients(f: Callable, path: Path, opts: PathOptions, args: tuple, kwargs: dict,
                         x: Any, *, multiply: bool = True) -> Any:
    """Integrated gradients of ``f`` along ``path``, in ``x``'s dtypes: ``delta *`` the
    :func:`gradient_integral`, or (``multiply=False``, the global attribution) the integral
    alone."""
    avg_grad = gradient_integral(f, path, opts, args, kwargs)
    if multiply:
        avg_grad = _tmap(jnp.multiply, path.delta, avg_grad)
    return cast_like(avg_grad, x)


def path_map(fn: Callable, path: Path, alphas: np.ndarray, *, batch_size: int | None) -> Any:
    """``fn`` at every point ``start + alphas[k] * delta``, stacked on a leading axis."""
    at = lambda a: fn(path_point(path.start, path.delta, a))
    return chunked_map(at, jnp.asarray(alphas, path.dtype), batch_size=batch_size, like=path.delta)


# --------------------------------------------------------------------------- the chunking engine


def _tree_sum0(tree):
    return _tmap(lambda a: jnp.sum(a, axis=0), tree)


def _tree_add(a, b):
    return _tmap(jnp.add, a, b)


def normal(key, shape, dtype):
    """``jax.random.normal`` drawn on JAX's classic threefry stream (``jax.threefry_partitionable
    (False)``: one threefry hash per two values instead of one per value), whatever the global
    setting. Noise is the per-sample cost SmoothGrad adds to a gradient: on XLA:CPU this draw took
    a third of the time, and SmoothGrad of a small CNN 0.89-0.95x as long (benchmarks/README.md).
    Each explainer's noise is drawn per example (vmapped keys), never as one array to partition."""
    with jax.threefry_partitionable(False):
        return jax.random.normal(key, shape, dtype)


def shap_draw(key, leaves: list, ref_leaves: list, n_refs: int, sigma: float):
    """One draw of expected gradients / gradient SHAP, ``(x', b, point, index of b)`` (the first
    three as lists of leaves): a
    baseline ``b`` picked uniformly from the reference set, ``x' = x + N(0, sigma^2)`` noise and
    ``point = b + alpha (x' - b)`` with ``alpha ~ U(0, 1)``; ``key`` splits into the three draws."""
    k_idx, k_alpha, k_noise = jax.random.split(key, 3)
    idx = jax.random.randint(k_idx, (), 0, n_refs)
    alpha = jax.random.uniform(k_alpha, (), leaves[0].dtype)
    k_leaves = jax.random.split(k_noise, len(leaves))
    xs = [
        leaf + sigma * normal(kl, leaf.shape, leaf.dtype) if sigma > 0 else leaf
        for leaf, kl in zip(leaves, k_leaves)
    ]
    bs = [r[idx] for r in ref_leaves]
    point = [bi + alpha.astype(xi.dtype) * (xi - bi) for xi, bi in zip(xs, bs)]
    return xs, bs, point, idx


def tree_total(tree) -> jax.Array:
    """The sum of every element of every leaf."""
    return sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(tree))


def cast_like(tree: Any, like: Any) -> Any:
    return _tmap(lambda a, b: a.astype(b.dtype), tree, like)


def auto_batch_size(n: int, batch_size: int | None, like: Any = None) -> int:
    """The chunk size for ``n`` points: ``batch_size``, or when ``None`` the measured best.

    ``None`` gives about :data:`CHUNK_VALUES` input values per chunk, each point being one input
    shaped like the pytree ``like`` for every example of the enclosing ``vmap``s (32x32x3 images:
    ``jax.jit(jax.vmap(explainer))`` over 64 images gives chunks of one point, one example chunks
    of up to 32 points), with the ``n`` points split into equal chunks, at most
    :data:`AUTO_MAX_CHUNKS` of them (64 images at 50 steps: 25 chunks of two points).
    """
    if batch_size is not None:
        return batch_size
    values = sum(int(np.prod(jnp.shape(leaf))) for leaf in jax.tree_util.tree_leaves(like))
    k = max(1, CHUNK_VALUES // (max(values, 1) * _compile.vmapped_size()))
    if k >= n:
        return n
    chunks = min(-(-n // k), AUTO_MAX_CHUNKS)
    return -(-n // chunks)


def chunked_sum(fn: Callable, xs: Any, *, batch_size: int | None, like: Any = None) -> Any:
    """Returns ``sum_i fn(xs[i])`` over the leading axis of the pytree ``xs``.

    ``fn`` is vmapped over chunks of at most ``batch_size`` points, so at most that many
    evaluations are alive at once (``None``: :func:`auto_batch_size` chooses, each point counted
    as one input shaped like ``like``). Up to
    :data:`MAX_UNROLLED_CHUNKS` chunks are unrolled into the traced program, more run in a
    ``lax.scan`` (see the constant's note).
    """
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    batch_size = auto_batch_size(n, batch_size, like)
    vfn = jax.vmap(fn)
    if batch_size >= n:
        return _tree_sum0(vfn(xs))
    n_chunks = -(-n // batch_size)
    take = lambda lo, hi: _tmap(lambda a: a[lo:hi], xs)
    if n_chunks <= MAX_UNROLLED_CHUNKS:
        total = None
        for lo in range(0, n, batch_size):
            part = _tree_sum0(vfn(take(lo, min(lo + batch_size, n))))
            total = part if total is None else _tree_add(total, part)
        return total
    n_full = n // batch_size
    full = _tmap(lambda a: a[: n_full * batch_size].reshape((n_full, batch_size) + a.shape[1:]), xs)

    def body(carry, chunk):
        return _tree_add(carry, _tree_sum0(vfn(chunk))), None

    first = _tree_sum0(vfn(_tmap(lambda a: a[0], full)))
    rest = _tmap(lambda a: a[1:], full)
    total, _ = jax.lax.scan(body, first, rest)
    if n_full * batch_size < n:
        total = _tree_add(total, _tree_sum0(vfn(take(n_full * batch_size, n))))
    return total


def chunked_map(fn: Callable, xs: Any, *, batch_size: int | None, like: Any = None) -> Any:
    """Returns ``vmap(fn)(xs)``, evaluated in unrolled chunks of at most ``batch_size`` points
    (``None``: chosen as in :func:`chunked_sum`)."""
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    batch_size = auto_batch_size(n, batch_size, like)
    vfn = jax.vmap(fn)
    if batch_size >= n:
        return vfn(xs)
    parts = [vfn(_tmap(lambda a: a[lo : lo + batch_size], xs)) for lo in range(0, n, batch_size)]
    return _tmap(lambda *p: jnp.concatenate(p, axis=0), *parts)
