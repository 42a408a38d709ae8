"""Representation similarity: PCA, CCA, SVCCA, PWCCA and CKA.

Compare what two layers (of one network or of two) compute by their activations on the same ``n``
inputs: ``x`` is ``(n, p)`` (``p`` neurons), ``y`` is ``(n, q)``. Inputs with more axes, e.g.
convolutional activations ``(n, h, w, c)``, are flattened to ``(n, h * w * c)``, as Kornblith et al.
do. Every measure centres the activations (each neuron to mean zero over the inputs) first.

* :func:`pca` (Pearson 1901): principal directions and the variance they explain.
* :func:`cca` (Hotelling 1936): canonical correlations ``rho_1 >= rho_2 >= ...`` between the
  subspaces the two layers span; invariant to any invertible linear map of either layer.
* :func:`svcca` (Raghu et al. 2017): CCA after keeping each layer's top singular directions (99%
  of the variance), reported as the mean canonical correlation.
* :func:`pwcca` (Morcos et al. 2018): canonical correlations weighted by how much of the layer's
  neurons each canonical direction accounts for.
* :func:`cka` (Kornblith et al. 2019): centred kernel alignment with a linear or RBF kernel;
  invariant to orthogonal maps and isotropic scaling, not to arbitrary invertible maps.

All of them are pure JAX: they compose with ``jax.jit`` (and :func:`cka` with ``jax.grad``), except
:func:`pca` with a variance fraction, whose output shape depends on the data. Numerical rank:
singular values below ``rtol * s_max`` (default ``max(n, p) * eps``, as ``numpy.linalg.matrix_rank``)
count as zero, and the directions they belong to are left out of the canonical correlations.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain import _checks

__all__ = ["PCA", "CCA", "pca", "cca", "svcca", "pwcca", "cka", "KERNELS"]

KERNELS = ("linear", "rbf")


class PCA(NamedTuple):
    """Principal component analysis of ``x`` (:func:`pca`).

    Attributes:
      projected: ``(n, k)`` the centred data in the principal directions.
      components: ``(k, p)`` the principal directions (orthonormal rows), largest variance first;
        the sign makes each row's largest-magnitude entry positive.
      explained_variance: ``(k,)`` variance along each direction (``s^2 / (n - 1)``).
      explained_variance_ratio: ``(k,)`` its fraction of the total variance.
      mean: ``(p,)`` the mean that was subtracted.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain import similarity
      >>> r = similarity.pca(jnp.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]]), 1)
      >>> r.projected.shape, r.components.shape, r.mean.tolist()
      ((4, 1), (1, 2), [0.0, 0.0])

    References:
      Pearson (1901), "On lines and planes of closest fit to systems of points in space",
      Philosophical Magazine 2.
    """

    projected: jax.Array
    components: jax.Array
    explained_variance: jax.Array
    explained_variance_ratio: jax.Array
    mean: jax.Array


class CCA(NamedTuple):
    """Canonical correlation analysis of ``x`` and ``y`` (:func:`cca`).

    With ``r = min(n, p, q)``: ``x_variates[:, i] = (x - mean) @ x_weights[:, i]`` and likewise for
    ``y``; variates have zero mean and unit norm, different ``i`` are orthogonal, and
    ``correlations[i] = <x_variates[:, i], y_variates[:, i]>``, in decreasing order. Only the first
    ``min(rank_x, rank_y)`` are canonical correlations; the rest (directions beyond a layer's
    numerical rank) are reported as 0 with zero weights.

    Attributes:
      correlations: ``(r,)``.
      x_weights: ``(p, r)``; y_weights: ``(q, r)``.
      x_variates: ``(n, r)``; y_variates: ``(n, r)``.
      rank_x: numerical rank of the centred ``x`` (int32 scalar); rank_y: of ``y``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain import similarity
      >>> x = jax.random.normal(jax.random.key(0), (50, 2))
      >>> r = similarity.cca(x, jnp.concatenate([x, x[:, :1]], axis=1))   # a repeated column
      >>> r.correlations.shape, int(r.rank_x), int(r.rank_y)
      ((2,), 2, 2)

    References:
      Hotelling (1936), "Relations between two sets of variates", Biometrika 28.
    """

    correlations: jax.Array
    x_weights: jax.Array
    y_weights: jax.Array
    x_variates: jax.Array
    y_variates: jax.Array
    rank_x: jax.Array
    rank_y: jax.Array


# --------------------------------------------------------------------------- checks


def _matrix(fn: str, name: str, value: Any) -> jax.Array:
    where = f"similarity.{fn}"
    a = _checks.check_array(where, name, value, expected="an array of activations (n_inputs, n_neurons)")
    a = a if isinstance(a, jax.Array) else jnp.asarray(a)
    if a.ndim < 2:
        raise ValueError(
            f"jaxplain.similarity.{fn}: {name} must be (n_inputs, n_neurons) (or (n_inputs, ...), "
            f"flattened per input), got shape {a.shape}. For a single neuron use {name}[:, None]."
        )
    if a.shape[0] < 2:
        raise ValueError(
            f"jaxplain.similarity.{fn}: {name} needs at least 2 inputs (rows), got shape "
            f"{a.shape}."
        )
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.result_type(float))
    a = a.reshape(a.shape[0], -1)
    _checks.check_finite(where, name, a)
    return a


def _pair(fn: str, x: Any, y: Any) -> tuple[jax.Array, jax.Array]:
    x = _matrix(fn, "x", x)
    y = _matrix(fn, "y", y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"jaxplain.similarity.{fn}: x and y must hold activations for the same inputs (same "
            f"number of rows), got {x.shape[0]} and {y.shape[0]} rows."
        )
    dtype = jnp.promote_types(x.dtype, y.dtype)
    return x.astype(dtype), y.astype(dtype)


def _rtol(fn: str, rtol: Any, shape) -> float:
    if rtol is None:
        return float(max(shape)) * float(np.finfo(np.float32).eps)
    return _checks.check_float(f"similarity.{fn}", "rtol", rtol, minimum=0.0)


def _centre(a: jax.Array) -> jax.Array:
    return a - jnp.mean(a, axis=0)


def _svd(a: jax.Array, rtol: float):
    """Thin SVD of a centred matrix with the directions beyond its numerical rank zeroed."""
    u, s, vt = jnp.linalg.svd(a, full_matrices=False)
    keep = s > rtol * s[0]
    return u * keep, s, vt, keep


def _sign_rows(vt: jax.Array) -> jax.Array:
    """+1/-1 per row so that each row's largest-magnitude entry is positive."""
    pick = jnp.argmax(jnp.abs(vt), axis=1)
    sign = jnp.sign(vt[jnp.arange(vt.shape[0]), pick])
    return jnp.where(sign == 0, 1.0, sign).astype(vt.dtype)


# --------------------------------------------------------------------------- PCA


def pca(x: Any, n_components: int | float | None = None) -> PCA:
    """Principal component analysis by the SVD of the centred data.

    Args:
      x: ``(n, p)`` data (more axes are flattened per row).
      n_components: ``None`` (all ``min(n, p)``), an int ``k``, or a fraction in ``(0, 1)``: the
        fewest directions explaining at least that fraction of the variance (the count depends on
        the data, so this form cannot run under ``jax.jit``).

    Returns:
      :class:`PCA`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain import similarity
      >>> x = jnp.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
      >>> r = similarity.pca(x)
      >>> r.components.tolist(), [round(float(v), 4) for v in r.explained_variance_ratio]
      ([[1.0, 0.0], [0.0, 1.0]], [0.8, 0.2])

    References:
      Pearson (1901), "On lines and planes of closest fit to systems of points in space",
      Philosophical Magazine 2.
    """
    x = _matrix("pca", "x", x)
    n, p = x.shape
    kmax = min(n, p)
    frac = None
    if n_components is None:
        k = kmax
    elif isinstance(n_components, (float, np.floating)):
        frac = float(n_components)
        if not 0.0 < frac < 1.0:
            raise ValueError(
                f"jaxplain.similarity.pca: a float n_components is the share of variance to keep, "
                f"in (0, 1); got {n_components}. Pass an int for a number of components."
            )
    else:
        k = _checks.check_int("similarity.pca", "n_components", n_components, minimum=1)
        if k > kmax:
            raise ValueError(
                f"jaxplain.similarity.pca: n_components must be <= min(n, p) = {kmax} for x of "
                f"shape {x.shape}, got {k}."
            )
    projected, components, var, ratio, mean = _pca_core(x)
    if frac is not None:
        if isinstance(ratio, jax.core.Tracer):
            raise TypeError(
                "jaxplain.similarity.pca: n_components as a variance fraction picks a data-"
                "dependent number of components, which jax.jit cannot trace; pass an int, or call "
                "pca outside jit."
            )
        k = int(np.searchsorted(np.cumsum(np.asarray(ratio)), frac - 1e-7) + 1)
        k = min(k, kmax)
    return PCA(projected[:, :k], components[:k], var[:k], ratio[:k], mean)


@jax.jit
def _pca_core(x):
    n = x.shape[0]
    mean = jnp.mean(x, axis=0)
    u, s, vt = jnp.linalg.svd(x - mean, full_matrices=False)
    sign = _sign_rows(vt)
    var = s**2 / (n - 1)
    total = jnp.sum(var)
    ratio = var / jnp.where(total > 0, total, 1.0)
    return (u * sign[None, :]) * s, vt * sign[:, None], var, ratio, mean


# --------------------------------------------------------------------------- CCA family


def _cca_core(ux, uy, sx, vtx, keep_x, sy, vty, keep_y):
    """CCA from masked left singular vectors (orthonormal bases of the centred data)."""
    m = ux.T @ uy
    a, rho, bt = jnp.linalg.svd(m, full_matrices=False)
    r = min(ux.shape[0], vtx.shape[1], vty.shape[1])
    rank_x = jnp.sum(keep_x).astype(jnp.int32)
    rank_y = jnp.sum(keep_y).astype(jnp.int32)
    valid = jnp.arange(rho.shape[0]) < jnp.minimum(rank_x, rank_y)
    rho = jnp.where(valid, jnp.clip(rho, 0.0, 1.0), 0.0)
    a = a * valid
    b = bt.T * valid
    xv = ux @ a
    yv = uy @ b
    inv_sx = jnp.where(keep_x, 1.0 / jnp.where(keep_x, sx, 1.0), 0.0)
    inv_sy = jnp.where(keep_y, 1.0 / jnp.where(keep_y, sy, 1.0), 0.0)
    xw = vtx.T @ (inv_sx[:, None] * a)
    yw = vty.T @ (inv_sy[:, None] * b)
    pad = lambda t, axis: _fit(t, r, axis)
    return CCA(pad(rho, 0), pad(xw, 1), pad(yw, 1), pad(xv, 1), pad(yv, 1), rank_x, rank_y)


def _fit(t: jax.Array, r: int, axis: int) -> jax.Array:
    """Cuts or zero-pads axis ``axis`` of ``t`` to length ``r``."""
    size = t.shape[axis]
    if size >= r:
        return jax.lax.slice_in_dim(t, 0, r, axis=axis)
    widths = [(0, 0)] * t.ndim
    widths[axis] = (0, r - size)
    return jnp.pad(t, widths)


def cca(x: Any, y: Any, *, rtol: float | None = None) -> CCA:
    """Canonical correlation analysis between two sets of activations.

    The canonical correlations are the cosines of the principal angles between the column spaces
    of the centred ``x`` and ``y``: with orthonormal bases ``U_x``, ``U_y`` of those spaces (from
    thin SVDs, directions below the numerical rank dropped), they are the singular values of
    ``U_x^T U_y``. Equivalent to the singular values of ``S_xx^(-1/2) S_xy S_yy^(-1/2)`` for
    full-rank covariances, but without forming or inverting them.

    Args:
      x: ``(n, p)`` activations (more axes are flattened per row).
      y: ``(n, q)`` activations of the same inputs.
      rtol: relative threshold of the numerical rank (default ``max(n, p) * eps``).

    Returns:
      :class:`CCA`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain import similarity
      >>> x = jax.random.normal(jax.random.key(0), (100, 3))
      >>> a = jax.random.normal(jax.random.key(1), (3, 3))       # an invertible map
      >>> r = similarity.cca(x, x @ a)
      >>> [round(float(c), 4) for c in r.correlations]
      [1.0, 1.0, 1.0]

    References:
      Hotelling (1936), "Relations between two sets of variates", Biometrika 28.
      Björck & Golub (1973), "Numerical methods for computing angles between linear subspaces",
      Mathematics of Computation 27.
    """
    x, y = _pair("cca", x, y)
    return _cca(x, y, _rtol("cca", rtol, x.shape), _rtol("cca", rtol, y.shape))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _cca(x, y, rtol_x: float, rtol_y: float) -> CCA:
    ux, sx, vtx, kx = _svd(_centre(x), rtol_x)
    uy, sy, vty, ky = _svd(_centre(y), rtol_y)
    return _cca_core(ux, uy, sx, vtx, kx, sy, vty, ky)


def _check_keep(fn: str, keep: Any) -> int | float:
    if isinstance(keep, bool) or not isinstance(keep, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"jaxplain.similarity.{fn}: keep must be a variance fraction in (0, 1] or a number "
            f"of directions >= 1, got {type(keep).__name__} {keep!r}."
        )
    if isinstance(keep, (int, np.integer)):
        if keep < 1:
            raise ValueError(f"jaxplain.similarity.{fn}: keep must be >= 1 directions, got {keep}.")
        return int(keep)
    keep = float(keep)
    if not 0.0 < keep <= 1.0:
        raise ValueError(
            f"jaxplain.similarity.{fn}: a float keep is the fraction of variance to keep, in "
            f"(0, 1], got {keep} (Raghu et al. keep 0.99; pass an int for a number of directions)."
        )
    return keep


def _keep_mask(s: jax.Array, keep: int | float, rtol: float) -> jax.Array:
    """Which singular directions SVCCA keeps: the top ``keep`` (int) or the fewest explaining a
    ``keep`` fraction of the variance (float in (0, 1])."""
    idx = jnp.arange(s.shape[0])
    rank = s > rtol * s[0]
    if isinstance(keep, int):
        return rank & (idx < keep)
    var = s**2
    cum = jnp.cumsum(var) / jnp.sum(var)
    # Direction i is kept if the variance before it is still short of the fraction.
    before = jnp.concatenate([jnp.zeros((1,), cum.dtype), cum[:-1]])
    return rank & (before < keep - 1e-6)


def svcca(x: Any, y: Any, *, keep: int | float = 0.99, rtol: float | None = None) -> jax.Array:
    """Singular vector CCA: the mean canonical correlation of the layers' top singular subspaces.

    Each layer's centred activations are reduced to their top singular directions (the fewest
    explaining ``keep`` of the variance, or ``keep`` directions), then :func:`cca` is run between
    the reduced layers and the mean of the ``min(k_x, k_y)`` canonical correlations is returned.

    Args:
      x: ``(n, p)`` activations; y: ``(n, q)`` activations of the same inputs.
      keep: variance fraction in ``(0, 1]`` (Raghu et al.: 0.99) or a number of directions.
      rtol: relative threshold of the numerical rank.

    Returns:
      The SVCCA similarity, a scalar in [0, 1].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain import similarity
      >>> x = jax.random.normal(jax.random.key(0), (200, 8))
      >>> q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (8, 8)))
      >>> round(float(similarity.svcca(x, 3.0 * x @ q)), 4)
      1.0

    References:
      Raghu, Gilmer, Yosinski & Sohl-Dickstein (2017), "SVCCA: Singular Vector Canonical
      Correlation Analysis for Deep Learning Dynamics and Interpretability", NeurIPS.
    """
    x, y = _pair("svcca", x, y)
    keep = _check_keep("svcca", keep)
    return _svcca(x, y, keep, _rtol("svcca", rtol, x.shape), _rtol("svcca", rtol, y.shape))


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _svcca(x, y, keep, rtol_x: float, rtol_y: float) -> jax.Array:
    ux, sx, vtx, _ = _svd(_centre(x), rtol_x)
    uy, sy, vty, _ = _svd(_centre(y), rtol_y)
    kx = _keep_mask(sx, keep, rtol_x)
    ky = _keep_mask(sy, keep, rtol_y)
    res = _cca_core(ux * kx, uy * ky, sx, vtx, kx, sy, vty, ky)
    m = jnp.minimum(res.rank_x, res.rank_y)
    return jnp.sum(res.correlations) / jnp.maximum(m, 1)


def pwcca(x: Any, y: Any, *, rtol: float | None = None) -> jax.Array:
    """Projection-weighted CCA: canonical correlations weighted by their share of the layer.

    On the layer with fewer neurons (``x`` on a tie), the weight of canonical direction ``i`` is
    ``alpha_i = sum_j |<h_i, z_j>|``, the summed magnitude of its inner products with the layer's
    (centred) neuron activation vectors ``z_j``, normalized to sum to one; the similarity is
    ``sum_i alpha_i rho_i``. Directions that carry much of the layer's activity count more than
    the many small, noisy ones, which SVCCA's mean weighs equally.

    Args:
      x: ``(n, p)`` activations; y: ``(n, q)`` activations of the same inputs.
      rtol: relative threshold of the numerical rank.

    Returns:
      The PWCCA similarity, a scalar in [0, 1].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain import similarity
      >>> x = jax.random.normal(jax.random.key(0), (200, 5))
      >>> round(float(similarity.pwcca(x, x @ jnp.diag(jnp.arange(1.0, 6.0)))), 4)
      1.0

    References:
      Morcos, Raghu & Bengio (2018), "Insights on representational similarity in neural networks
      with canonical correlation", NeurIPS.
    """
    x, y = _pair("pwcca", x, y)
    return _pwcca(x, y, _rtol("pwcca", rtol, x.shape), _rtol("pwcca", rtol, y.shape))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _pwcca(x, y, rtol_x: float, rtol_y: float) -> jax.Array:
    xc, yc = _centre(x), _centre(y)
    res = _cca(xc, yc, rtol_x, rtol_y)
    swap = x.shape[1] > y.shape[1]  # static: the side with fewer neurons
    h = res.y_variates if swap else res.x_variates  # (n, r), orthonormal columns (or zero)
    z = yc if swap else xc
    alpha = jnp.sum(jnp.abs(h.T @ z), axis=1)
    total = jnp.sum(alpha)
    alpha = alpha / jnp.where(total > 0, total, 1.0)
    return jnp.sum(alpha * res.correlations)


# --------------------------------------------------------------------------- CKA


def _centred_gram(k: jax.Array) -> jax.Array:
    return k - jnp.mean(k, axis=0) - jnp.mean(k, axis=1)[:, None] + jnp.mean(k)


def _rbf_gram(a: jax.Array, threshold: float) -> jax.Array:
    sq = jnp.sum(a * a, axis=1)
    d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * (a @ a.T), 0.0)
    d2 = d2 * (1.0 - jnp.eye(a.shape[0], dtype=a.dtype))
    med = jnp.median(d2)
    scale = 2.0 * threshold**2 * jnp.where(med > 0, med, 1.0)
    return jnp.exp(-d2 / scale)


def cka(
    x: Any, y: Any, *, kernel: str = "linear", threshold: float = 1.0
) -> jax.Array:
    """Centred kernel alignment between two sets of activations.

    ``CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with ``HSIC(K, L) = tr(K H L H) /
    (n - 1)^2`` (``H`` the centring matrix) and Gram matrices ``K`` of ``x`` and ``L`` of ``y``:

    * ``"linear"``: ``K = x x^T``, so ``CKA = |y_c^T x_c|_F^2 / (|x_c^T x_c|_F |y_c^T y_c|_F)``
      (computed from whichever of the Gram or cross-covariance matrices is smaller);
    * ``"rbf"``: ``K_ij = exp(-|x_i - x_j|^2 / (2 sigma^2))`` with ``sigma^2 = threshold^2 *
      median_ij |x_i - x_j|^2`` (Kornblith et al.'s bandwidth, a fraction of the median distance).

    Both are invariant to orthogonal transforms and isotropic scaling of either input and equal 1
    when ``x == y``. Differentiable (usable in a loss) and jit-compatible.

    Args:
      x: ``(n, p)`` activations; y: ``(n, q)`` activations of the same inputs.
      kernel: ``"linear"`` or ``"rbf"``.
      threshold: the RBF bandwidth as a fraction of the median distance.

    Returns:
      The CKA similarity, a scalar in [0, 1].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain import similarity
      >>> x = jax.random.normal(jax.random.key(0), (50, 10))
      >>> q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (10, 10)))
      >>> [round(float(similarity.cka(x, 2.0 * x @ q, kernel=k)), 4) for k in ("linear", "rbf")]
      [1.0, 1.0]

    References:
      Kornblith, Norouzi, Lee & Hinton (2019), "Similarity of Neural Network Representations
      Revisited", ICML.
      Gretton, Bousquet, Smola & Schölkopf (2005), "Measuring Statistical Dependence with
      Hilbert-Schmidt Norms", ALT (HSIC).
    """
    kernel = _checks.check_choice("similarity.cka", "kernel", kernel, KERNELS)
    threshold = _checks.check_float("similarity.cka", "threshold", threshold, minimum=0.0)
    if threshold <= 0:
        raise ValueError(f"jaxplain.similarity.cka: threshold must be > 0, got {threshold}.")
    x, y = _pair("cka", x, y)
    return _cka(x, y, kernel, threshold)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _cka(x, y, kernel: str, threshold: float) -> jax.Array:
    n, p = x.shape
    q = y.shape[1]
    if kernel == "linear":
        xc, yc = _centre(x), _centre(y)
        if n * n <= p * q:  # Gram form, (n, n)
            kx, ky = xc @ xc.T, yc @ yc.T
            hxy, hxx, hyy = jnp.sum(kx * ky), jnp.sum(kx * kx), jnp.sum(ky * ky)
        else:  # feature form, (p, q)
            hxy = jnp.sum((yc.T @ xc) ** 2)
            hxx = jnp.sum((xc.T @ xc) ** 2)
            hyy = jnp.sum((yc.T @ yc) ** 2)
    else:
        kx = _centred_gram(_rbf_gram(x, threshold))
        ky = _centred_gram(_rbf_gram(y, threshold))
        hxy, hxx, hyy = jnp.sum(kx * ky), jnp.sum(kx * kx), jnp.sum(ky * ky)
    den = jnp.sqrt(hxx) * jnp.sqrt(hyy)
    return hxy / jnp.where(den > 0, den, 1.0)
