"""t-SNE input affinities: exact k nearest neighbours in blocks, per-point Gaussian bandwidths by
bisection to a target perplexity, and the symmetrized joint probabilities ``P``.

For each point ``i`` the conditional probabilities over its ``k`` nearest neighbours are

    p_{j|i} = exp(-beta_i |x_i - x_j|^2) / sum_{l in kNN(i)} exp(-beta_i |x_i - x_l|^2),

with ``beta_i = 1 / (2 sigma_i^2)`` chosen so that the entropy of ``p_{.|i}`` is ``log(perplexity)``
(natural log). The joint probabilities are ``P_ij = (p_{j|i} + p_{i|j}) / (2N)`` on the union of
the neighbour graphs; they sum to one. They are stored as the ``(N, k)`` neighbour table
``V_ij = p_{j|i} / (2N)`` so that ``P = V + V^T``: the attractive forces and the KL divergence are
sums over this table and never need the merged sparse matrix (see ``gradients.py``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "Affinities",
    "nearest_neighbors",
    "calibrate",
    "symmetrize",
    "joint_probabilities",
    "dense",
]

# Elements of one block of the distance matrix (rows x N): 2^24 float32 = 64 MiB. The budget
# bounds memory; speed hardly depends on it: the k-NN of 10,000 x 50 points took 0.79-0.84 s on the
# 2-core CPU for blocks of 256 to 5,000 rows (lax.top_k takes most of it; a two-stage top-k over
# column chunks was 3-9x slower).
KNN_BLOCK_ELEMENTS = 1 << 24


class Affinities(NamedTuple):
    """The symmetrized t-SNE affinities as a neighbour table, ``P = V + V^T``.

    Attributes:
      indices: ``(N, k)`` int32, the ``k`` nearest neighbours of each point (self excluded),
        nearest first.
      values: ``(N, k)`` ``V_ij = p_{j|i} / (2N)``; ``P_ij = V_ij + V_ji`` where ``V_ji`` is zero
        unless ``i`` is among ``j``'s neighbours. ``sum(values) == 0.5``.
      p_log_p: scalar ``sum_ij P_ij log P_ij`` over the merged entries (the constant part of the
        KL divergence).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain._tsne import affinities
      >>> a = affinities.joint_probabilities(jnp.array([[0.0], [1.0], [3.0], [7.0]]), 1.5)
      >>> a.indices.shape, round(float(jnp.sum(a.values)), 6)
      ((4, 3), 0.5)

    References:
      van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9.
    """

    indices: jax.Array
    values: jax.Array
    p_log_p: jax.Array


def _float_dtype(x) -> jnp.dtype:
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)


@jax.jit
def _centre(x):
    x = x - jnp.mean(x, axis=0)
    return x, jnp.sum(x * x, axis=1)


@jax.jit
def _knn_block(xb, x, sq, start, k_dummy):
    # Squared distances of the block rows to every point, by the matmul identity (on centred data;
    # the chosen neighbours' distances are recomputed directly below).
    n = x.shape[0]
    k = k_dummy.shape[0]
    d2 = jnp.sum(xb * xb, axis=1)[:, None] - 2.0 * (xb @ x.T) + sq[None, :]
    rows = start + jnp.arange(xb.shape[0])
    d2 = jnp.where(rows[:, None] == jnp.arange(n)[None, :], jnp.inf, d2)  # exclude self
    _, idx = jax.lax.top_k(-d2, k)
    diff = xb[:, None, :] - x[idx]
    exact = jnp.sum(diff * diff, axis=-1)
    # Re-sort by the exact distances (ties broken by index for determinism).
    order = jnp.lexsort((idx, exact), axis=-1)
    return jnp.take_along_axis(exact, order, axis=1), jnp.take_along_axis(idx, order, axis=1)


def nearest_neighbors(x, k: int, *, block_size: int | None = None) -> tuple[jax.Array, jax.Array]:
    """Exact ``k`` nearest neighbours (Euclidean) of every row of ``x``, self excluded.

    The distance matrix is computed ``block_size`` rows at a time (default: as many rows as fit
    in 2^24 distances), so memory stays bounded at ``block_size * N``; each block keeps its ``k``
    smallest with ``lax.top_k`` and recomputes their distances directly (no cancellation).

    Args:
      x: ``(N, D)`` data.
      k: neighbours per point, ``1 <= k < N``.
      block_size: rows per block (``None``: automatic).

    Returns:
      ``(sqdist, indices)``, both ``(N, k)``: squared distances (ascending) and int32 indices.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain._tsne import affinities
      >>> d2, idx = affinities.nearest_neighbors(jnp.array([[0.0], [1.0], [3.0], [7.0]]), 2)
      >>> idx.tolist(), d2.tolist()
      ([[1, 2], [0, 2], [1, 0], [2, 1]], [[1.0, 9.0], [1.0, 4.0], [4.0, 9.0], [16.0, 36.0]])

    References:
      van der Maaten (2014), "Accelerating t-SNE using Tree-Based Algorithms", JMLR 15 (t-SNE on
      the ``3 * perplexity`` nearest neighbours).
    """
    x = jnp.asarray(x)
    x = x.astype(_float_dtype(x))
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"nearest_neighbors: k must be in [1, N - 1] = [1, {n - 1}], got {k}.")
    if block_size is None:
        block_size = max(1, min(n, KNN_BLOCK_ELEMENTS // n))
    x, sq = _centre(x)
    k_dummy = jnp.zeros((k,), jnp.int8)  # carries k as a static shape
    out_d, out_i = [], []
    for start in range(0, n, block_size):
        xb = x[start : start + block_size]
        m = xb.shape[0]
        if m < block_size:  # pad the last block so one compiled function serves all blocks
            xb = jnp.concatenate([xb, jnp.zeros((block_size - m, x.shape[1]), x.dtype)])
        d, i = _knn_block(xb, x, sq, jnp.int32(start), k_dummy)
        out_d.append(d[:m])
        out_i.append(i[:m])
    return jnp.concatenate(out_d), jnp.concatenate(out_i).astype(jnp.int32)


@jax.jit
def _calibrate(sqdist, target, tol, max_iter):
    dtype = sqdist.dtype
    d = sqdist - jnp.min(sqdist, axis=1, keepdims=True)  # shift: p_{j|i} does not change
    big = jnp.asarray(jnp.finfo(dtype).max / 8, dtype)
    mean = jnp.mean(d, axis=1)
    beta0 = jnp.where(mean > 0, 1.0 / jnp.where(mean > 0, mean, 1.0), 1.0).astype(dtype)

    def entropy(beta):
        e = jnp.exp(-beta[:, None] * d)  # the nearest term is exp(0) = 1, so s >= 1
        s = jnp.sum(e, axis=1)
        h = jnp.log(s) + beta * (jnp.sum(d * e, axis=1) / s)
        return h, e / s[:, None]

    def cond(state):
        _, _, _, h, it = state
        return (it < max_iter) & jnp.any(jnp.abs(h - target) > tol)

    def body(state):
        beta, lo, hi, h, it = state
        flat = h > target  # entropy too high: sharpen (larger beta)
        lo = jnp.where(flat, beta, lo)
        hi = jnp.where(flat, hi, beta)
        grow = jnp.minimum(beta * 2.0, big)
        beta = jnp.where(flat, jnp.where(jnp.isinf(hi), grow, 0.5 * (beta + hi)), 0.5 * (beta + lo))
        h, _ = entropy(beta)
        return beta, lo, hi, h, it + 1

    h0, _ = entropy(beta0)
    init = (beta0, jnp.zeros_like(beta0), jnp.full_like(beta0, jnp.inf), h0, jnp.int32(0))
    beta, _, _, h, _ = jax.lax.while_loop(cond, body, init)
    _, p = entropy(beta)
    return p, beta, h


def calibrate(
    sqdist, perplexity: float, *, tol: float = 1e-5, max_iter: int = 200
) -> tuple[jax.Array, jax.Array]:
    """Conditional probabilities ``p_{j|i}`` whose entropy is ``log(perplexity)``, per point.

    A vectorized bisection on the precision ``beta_i = 1 / (2 sigma_i^2)`` of every point at once
    (doubling until the target is bracketed, then halving the bracket), stopped when every row's
    entropy is within ``tol`` nats of ``log(perplexity)`` or after ``max_iter`` steps. Distances are
    shifted by each row's minimum first, which leaves ``p_{j|i}`` unchanged and keeps the nearest
    term at ``exp(0) = 1``, so rows of duplicates (all distances zero) give a uniform row, never NaN.

    Args:
      sqdist: ``(N, k)`` squared distances to each point's neighbours.
      perplexity: the target perplexity, ``1 <= perplexity < k`` (the most a row of ``k``
        neighbours can reach is ``k``, a uniform row).
      tol: tolerance on the entropy, in nats.
      max_iter: bisection steps at most.

    Returns:
      ``(p, beta)``: ``(N, k)`` rows summing to one, and the ``(N,)`` precisions.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain._tsne import affinities
      >>> p, beta = affinities.calibrate(jnp.array([[1.0, 2.0, 4.0, 8.0]]), 2.0)
      >>> h = -float(jnp.sum(p * jnp.log(p)))
      >>> round(float(jnp.exp(h)), 4), round(float(jnp.sum(p)), 6)
      (2.0, 1.0)

    References:
      van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9.
    """
    sqdist = jnp.asarray(sqdist)
    sqdist = sqdist.astype(_float_dtype(sqdist))
    target = jnp.asarray(math.log(perplexity), sqdist.dtype)
    p, beta, _ = _calibrate(sqdist, target, jnp.asarray(tol, sqdist.dtype), jnp.int32(max_iter))
    return p, beta


@jax.jit
def symmetrize(indices, conditional) -> Affinities:
    """The joint affinities ``P = (C + C^T) / (2N)`` of conditional probabilities ``C`` on a k-NN graph.

    Only the constant ``sum P log P`` needs the merged matrix. For each table entry ``(i, j)`` a
    binary search in ``j``'s sorted neighbour list finds ``C_ji`` (or that ``i`` is not there):
    ``P_ij = (C_ij + C_ji) / (2N)``; an entry whose reverse is missing stands for two entries of
    ``P``, ``(i, j)`` and ``(j, i)``, which have the same value.

    Args:
      indices: ``(N, k)`` neighbour indices.
      conditional: ``(N, k)`` ``p_{j|i}``, rows summing to one.

    Returns:
      :class:`Affinities`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain._tsne import affinities
      >>> a = affinities.symmetrize(jnp.array([[1], [0], [1]]), jnp.ones((3, 1)))
      >>> a.values.tolist(), round(float(jnp.sum(affinities.dense(a))), 6)
      ([[0.1666666716337204], [0.1666666716337204], [0.1666666716337204]], 1.0)

    References:
      van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9.
    """
    n, k = indices.shape
    indices = indices.astype(jnp.int32)
    values = conditional / (2.0 * n)
    order = jnp.argsort(indices, axis=1)
    sorted_idx = jnp.take_along_axis(indices, order, axis=1).ravel()
    sorted_val = jnp.take_along_axis(values, order, axis=1).ravel()
    rows = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32)[:, None], (n, k))
    base = indices * k  # start of row j in the flat sorted table, for each entry (i, j)
    lo = jnp.zeros((n, k), jnp.int32)
    hi = jnp.full((n, k), k, jnp.int32)
    for _ in range(max(1, int(k).bit_length())):  # lower_bound of i in row j
        mid = (lo + hi) // 2
        less = sorted_idx[base + jnp.minimum(mid, k - 1)] < rows
        active = lo < hi
        lo = jnp.where(active & less, mid + 1, lo)
        hi = jnp.where(active & ~less, mid, hi)
    at = base + jnp.minimum(lo, k - 1)
    found = (lo < k) & (sorted_idx[at] == rows)
    merged = values + jnp.where(found, sorted_val[at], 0.0)
    count = jnp.where(found, 1.0, 2.0)  # a missing reverse: P_ji = P_ij is not in the table
    safe = jnp.where(merged > 0, merged, 1.0)
    p_log_p = jnp.sum(jnp.where(merged > 0, count * merged * jnp.log(safe), 0.0))
    return Affinities(indices, values, p_log_p)


def joint_probabilities(
    x,
    perplexity: float = 30.0,
    *,
    n_neighbors: int | None = None,
    block_size: int | None = None,
    tol: float = 1e-5,
) -> Affinities:
    """The t-SNE affinities of ``x``: k-NN, bandwidths by perplexity, symmetrization.

    Args:
      x: ``(N, D)`` data (checked by the caller, :func:`jaxplain.tsne`).
      perplexity: the target perplexity (effective number of neighbours), ``< N - 1``.
      n_neighbors: neighbours per point (default ``min(N - 1, floor(3 * perplexity))``).
      block_size: rows per block of the k-NN search (default automatic).
      tol: entropy tolerance of the bisection, in nats.

    Returns:
      :class:`Affinities`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain._tsne import affinities
      >>> x = jax.random.normal(jax.random.key(0), (50, 5))
      >>> a = affinities.joint_probabilities(x, perplexity=5.0)
      >>> a.indices.shape, round(float(jnp.sum(affinities.dense(a))), 5)
      ((50, 15), 1.0)

    References:
      van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9.
      van der Maaten (2014), "Accelerating t-SNE using Tree-Based Algorithms", JMLR 15.
    """
    n = x.shape[0]
    k = n_neighbors if n_neighbors is not None else min(n - 1, int(3 * perplexity))
    sqdist, idx = nearest_neighbors(x, k, block_size=block_size)
    p, _ = calibrate(sqdist, perplexity, tol=tol)
    return symmetrize(idx, p)


@jax.jit
def dense(aff: Affinities) -> jax.Array:
    """The ``(N, N)`` joint probability matrix ``P = V + V^T`` (for small ``N`` and tests).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain._tsne import affinities
      >>> a = affinities.symmetrize(jnp.array([[1], [0], [1]]), jnp.ones((3, 1)))
      >>> (affinities.dense(a) * 6).round(4).tolist()
      [[0.0, 2.0, 0.0], [2.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    n, k = aff.indices.shape
    rows = jnp.broadcast_to(jnp.arange(n)[:, None], (n, k))
    v = jnp.zeros((n, n), aff.values.dtype).at[rows, aff.indices].add(aff.values)
    return v + v.T
