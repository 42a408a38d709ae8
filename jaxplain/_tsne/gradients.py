"""The t-SNE objective and its gradient: exact O(N^2) and FFT-accelerated interpolation (FIt-SNE).

With the heavy-tailed kernel ``w_ij = (1 + |y_i - y_j|^2 / a)^(-a)`` (``a`` the degrees of freedom;
``a = 1`` is the Student-t / Cauchy kernel ``(1 + |y_i - y_j|^2)^-1`` of van der Maaten & Hinton),
``q_ij = w_ij / Z`` and ``Z = sum_{k != l} w_kl``, the cost and its gradient are

    KL(P || Q) = sum_ij P_ij log P_ij - sum_ij P_ij log w_ij + log Z,
    dKL/dy_i   = 4 [ sum_j P_ij u_ij (y_i - y_j) - (1/Z) sum_j w_ij u_ij (y_i - y_j) ],

with ``u_ij = (1 + |y_i - y_j|^2 / a)^-1`` (so ``w u = u^(a+1)``; for ``a = 1``, ``w u = w^2``).
The first sum (attraction) runs over the sparse neighbour table of :class:`Affinities`; the
second (repulsion) over all pairs, either exactly or by interpolation on a grid:

* :func:`repulsion_exact` sums all pairs, ``block_size`` rows at a time;
* :func:`repulsion_fft` (Linderman et al. 2019) interpolates the charges ``1`` and ``y`` of every
  point onto ``n_interpolation_points`` Lagrange nodes per box of a regular grid of ``n_boxes``
  boxes per side, convolves them with the kernels sampled on the grid by FFT, and interpolates the
  potentials back: O(N + G log G) per evaluation for a grid of ``G`` nodes.

The gradient returned is the true gradient of the KL divergence (with the factor 4). openTSNE,
FIt-SNE and bhtsne drop the 4 and scale their learning rates accordingly; the optimizer in
``api.py`` follows their learning-rate convention (it steps along ``gradient / 4``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxplain._tsne.affinities import Affinities

__all__ = [
    "Forces",
    "attraction",
    "repulsion_exact",
    "repulsion_fft",
    "kl_gradient",
    "n_boxes_for",
    "FFT_BOXES",
]

# Boxes per side the FFT grid may have. Each size compiles the optimizer step once (about 0.5 s
# on the 2-core CPU), so the sizes grow by about 1.25x; with 3 nodes a box the FFT length is
# 6 * boxes, and all of these are 2^a 3^b 5^c.
FFT_BOXES = (50, 64, 80, 100, 128, 160, 200, 256, 320, 400, 512, 640, 800, 1024)


class Forces(NamedTuple):
    """One evaluation of the t-SNE objective.

    Attributes:
      kl: the KL divergence ``KL(P || Q)`` of the un-exaggerated ``P`` (NaN if not requested).
      gradient: ``(N, d)`` the gradient of ``exaggeration * (-sum P log w) + log Z`` in ``y``, i.e.
        of the KL divergence with ``P`` multiplied by ``exaggeration``.
      z: the normalization ``Z = sum_{k != l} w_kl``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain._tsne import affinities, gradients
      >>> a = affinities.symmetrize(jnp.array([[1], [0]]), jnp.ones((2, 1)))   # P_01 = P_10 = 1/2
      >>> out = gradients.kl_gradient(jnp.array([[0.0, 0.0], [1.0, 0.0]]), a)
      >>> round(float(out.kl), 6), float(out.z), out.gradient.tolist()   # Q = P: KL 0, no force
      (0.0, 1.0, [[0.0, 0.0], [0.0, 0.0]])

    References:
      van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9.
    """

    kl: jax.Array
    gradient: jax.Array
    z: jax.Array


def _check_dof(dof):
    if not isinstance(dof, (int, float)) or not dof > 0:
        raise ValueError(f"t-SNE: dof (degrees of freedom) must be a number > 0, got {dof!r}.")
    return float(dof)


def _pow(base, exponent: float):
    # Integer exponents by multiplication (exact, and what XLA fuses best); others by exp/log.
    if exponent == 1.0:
        return base
    if exponent == 2.0:
        return base * base
    return base**exponent


@functools.partial(jax.jit, static_argnames=("dof", "with_kl"))
def attraction(y, aff: Affinities, *, dof: float = 1.0, with_kl: bool = True):
    """Attractive forces ``sum_j P_ij u_ij (y_i - y_j)`` and ``sum_ij P_ij log w_ij``.

    ``P = V + V^T`` is never merged: the forward terms ``V_ij u_ij (y_i - y_j)`` are summed over
    each row of the ``(N, k)`` table, and the reverse terms of ``V^T`` are the same terms scattered
    to the neighbour with the opposite sign (``u`` is symmetric).

    Args:
      y: ``(N, d)`` embedding.
      aff: :class:`Affinities`.
      dof: degrees of freedom ``a`` of the kernel.
      with_kl: also return ``sum P log w`` (else 0).

    Returns:
      ``(forces (N, d), sum_ij P_ij log w_ij)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain._tsne import affinities, gradients
      >>> a = affinities.symmetrize(jnp.array([[1], [0]]), jnp.ones((2, 1)))
      >>> f, _ = gradients.attraction(jnp.array([[0.0, 0.0], [1.0, 0.0]]), a)
      >>> f.tolist()   # P_01 = 1/2, u_01 = 1/2
      [[-0.25, 0.0], [0.25, 0.0]]

    References:
      van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9.
    """
    n, d = y.shape
    idx, v = aff.indices, aff.values.astype(y.dtype)
    yt = y.T  # (d, N): one gather and one scatter per coordinate ran 8x faster than (N, k, d)
    diffs = [yt[c][:, None] - jnp.take(yt[c], idx, axis=0) for c in range(d)]
    d2 = functools.reduce(jnp.add, [q * q for q in diffs])
    u = 1.0 / (1.0 + d2 / dof)
    e = v * u
    out = []
    flat = idx.ravel()
    for q in diffs:
        t = e * q
        out.append(jnp.sum(t, axis=1) - jax.ops.segment_sum(t.ravel(), flat, n))
    forces = jnp.stack(out, axis=1)
    if not with_kl:
        return forces, jnp.zeros((), y.dtype)
    # sum_ij P_ij log w_ij = 2 sum_(i,j in table) V_ij log w_ij, and log w = a log u.
    return forces, 2.0 * dof * jnp.sum(v * jnp.log(u))


@functools.partial(jax.jit, static_argnames=("dof", "block_size"))
def repulsion_exact(y, *, dof: float = 1.0, block_size: int | None = None):
    """Exact repulsive forces ``sum_j w_ij u_ij (y_i - y_j)`` and ``Z = sum_{i != j} w_ij``.

    All ``N^2`` pairs, ``block_size`` rows at a time (``None``: all rows at once up to 2^22 pairs,
    else blocks of ``2^22 / N`` rows under ``lax.map``), so memory stays ``O(block_size * N)``.

    Args:
      y: ``(N, d)`` embedding.
      dof: degrees of freedom ``a``.
      block_size: rows per block.

    Returns:
      ``(forces (N, d), Z)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxplain._tsne import gradients
      >>> f, z = gradients.repulsion_exact(jnp.array([[0.0, 0.0], [1.0, 0.0]]))
      >>> f.tolist(), float(z)   # w = 1/2 each way; w u (y_0 - y_1) = -1/4
      ([[-0.25, 0.0], [0.25, 0.0]], 1.0)

    References:
      van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9.
    """
    n, d = y.shape
    if block_size is None:
        block_size = n if n * n <= (1 << 22) else max(1, (1 << 22) // n)
    yt = y.T

    def rows(yb):  # (b, d) -> forces (b, d), partial Z
        diffs = [yb[:, c][:, None] - yt[c][None, :] for c in range(d)]
        d2 = functools.reduce(jnp.add, [q * q for q in diffs])
        u = 1.0 / (1.0 + d2 / dof)
        w = _pow(u, dof)
        wu = w * u
        f = jnp.stack([jnp.sum(wu * q, axis=1) for q in diffs], axis=1)
        return f, jnp.sum(w, axis=1) - 1.0  # the self term w_ii = 1 exactly (d2 = 0)

    if block_size >= n:
        f, zr = rows(y)
        return f, jnp.sum(zr)
    n_blocks = -(-n // block_size)
    pad = n_blocks * block_size - n
    yp = jnp.concatenate([y, jnp.zeros((pad, d), y.dtype)]) if pad else y
    f, zr = jax.lax.map(rows, yp.reshape(n_blocks, block_size, d))
    return f.reshape(-1, d)[:n], jnp.sum(zr.reshape(-1)[:n])


def _lagrange(u, p: int):
    """Weights ``(..., p)`` of the Lagrange basis on nodes ``(j + 1/2) / p`` at ``u`` in [0, 1]."""
    t = (np.arange(p) + 0.5) / p
    out = []
    for j in range(p):
        num = 1.0
        den = 1.0
        for l in range(p):
            if l != j:
                num = num * (u - t[l])
                den *= t[j] - t[l]
        out.append(num / den)
    return jnp.stack(out, axis=-1)


def n_boxes_for(span: float, *, min_num_intervals: int = 50, ints_in_interval: float = 1.0) -> int:
    """Boxes per side of the FFT grid for an embedding spanning ``span``: at least
    ``min_num_intervals`` and at least ``span / ints_in_interval`` (boxes no wider than
    ``ints_in_interval``), rounded up to a size of :data:`FFT_BOXES` (then multiples of 256). The
    rule is openTSNE's; the rounding is coarser, so that few sizes are compiled.

    Example:
      >>> from jaxplain._tsne import gradients
      >>> gradients.n_boxes_for(10.0), gradients.n_boxes_for(85.5), gradients.n_boxes_for(1100.0)
      (50, 100, 1280)
    """
    want = max(int(min_num_intervals), int(np.ceil(float(span) / ints_in_interval)))
    for b in FFT_BOXES:
        if b >= want:
            return b
    return int(-(-want // 256) * 256)


def _circulant_offsets(g: int) -> np.ndarray:
    off = np.arange(2 * g)
    return np.where(off < g, off, off - 2 * g).astype(np.float64)  # index g is never used


def _forward(grids, kernels, g: int, d: int):
    """Spectra of the charge ``grids`` ``(C, g[, g])`` zero-padded to the ``2g``-periodic grid (in
    2-D the zero half is skipped on the first pass) and of the ``kernels`` ``(K, 2g[, 2g])``
    sampled on it. (One transform of the padded charges and kernels stacked together ran no faster
    on XLA:CPU.)"""
    gh = jnp.fft.rfft(grids, n=2 * g, axis=-1)
    if d == 2:
        gh = jnp.fft.fft(gh, n=2 * g, axis=-2)
    return gh, jnp.fft.rfftn(kernels, axes=tuple(range(1, d + 1)))


def _backward(spectra, g: int, d: int):
    """The inverse real FFT of ``spectra``, keeping only the first ``g`` nodes per side (in 2-D
    the unused half is dropped between the two passes)."""
    if d == 2:
        spectra = jnp.fft.ifft(spectra, axis=-2)[..., :g, :]
    return jnp.fft.irfft(spectra, n=2 * g, axis=-1)[..., :g]


def _parseval_weights(g: int) -> np.ndarray:
    """Weights of the half spectrum of a real FFT of length ``2g`` in a sum over the full one."""
    w = np.full(g + 1, 2.0)
    w[0] = w[-1] = 1.0
    return w


@functools.partial(jax.jit, static_argnames=("dof", "n_boxes", "n_interpolation_points"))
def repulsion_fft(
    y,
    *,
    dof: float = 1.0,
    n_boxes: int = 50,
    n_interpolation_points: int = 3,
):
    """Repulsive forces and ``Z`` by FFT-accelerated interpolation (FIt-SNE), for ``d`` = 1 or 2.

    The embedding's bounding square is cut into ``n_boxes`` boxes per side with
    ``n_interpolation_points`` equispaced Lagrange nodes per box and side. The charges ``1`` and
    ``y - c`` (``c`` the square's centre) of every point are spread onto the nodes of its box, the
    node grids are convolved with the kernels ``w`` and ``w u`` sampled at the node offsets (by FFT
    on a grid twice as long per side), and the potentials are interpolated back at the points.
    The error falls as the boxes shrink; openTSNE's rule (boxes no wider than 1) is
    :func:`n_boxes_for`. ``n_boxes`` is static: each value compiles once.

    Args:
      y: ``(N, d)`` embedding, ``d`` in {1, 2}.
      dof: degrees of freedom ``a``.
      n_boxes: boxes per side.
      n_interpolation_points: nodes per box and side (3, as FIt-SNE and openTSNE).

    Returns:
      ``(forces (N, d), Z)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain._tsne import gradients
      >>> y = 5 * jax.random.normal(jax.random.key(0), (500, 2))
      >>> fe, ze = gradients.repulsion_exact(y)
      >>> ff, zf = gradients.repulsion_fft(y, n_boxes=100)   # boxes 0.35 wide
      >>> bool(jnp.linalg.norm(ff - fe) < 2e-3 * jnp.linalg.norm(fe)), bool(abs(zf / ze - 1) < 1e-4)
      (True, True)

    References:
      Linderman, Rachh, Hoskins, Steinerberger & Kluger (2019), "Fast interpolation-based t-SNE for
      improved visualization of single-cell RNA-seq data", Nature Methods 16.
    """
    n, d = y.shape
    if d not in (1, 2):
        raise ValueError(
            f"repulsion_fft: the interpolation scheme is for 1-D and 2-D embeddings, got y of "
            f"shape {y.shape}; use repulsion_exact (method='exact') for {d} dimensions."
        )
    p = int(n_interpolation_points)
    nb = int(n_boxes)
    g = nb * p
    dtype = y.dtype
    lo = jnp.min(y)
    hi = jnp.max(y)
    span = jnp.maximum(hi - lo, jnp.asarray(1e-6, dtype))  # all points equal: any box works
    h = span / nb
    rel = (y - lo) / h
    box = jnp.clip(jnp.floor(rel), 0, nb - 1)
    lag = _lagrange(rel - box, p)  # (N, d, p)
    node = box.astype(jnp.int32)[..., None] * p + jnp.arange(p, dtype=jnp.int32)  # (N, d, p)
    if d == 1:
        flat_idx = node[:, 0, :]
        wts = lag[:, 0, :]
    else:
        flat_idx = (node[:, 0, :, None] * g + node[:, 1, None, :]).reshape(n, p * p)
        wts = (lag[:, 0, :, None] * lag[:, 1, None, :]).reshape(n, p * p)
    yc = y - 0.5 * (lo + hi)
    charges = [jnp.ones((n,), dtype)] + [yc[:, c] for c in range(d)]
    fi = flat_idx.ravel()
    grids = jnp.stack(
        [jax.ops.segment_sum((wts * q[:, None]).ravel(), fi, g**d) for q in charges]
    ).reshape((len(charges),) + (g,) * d)

    # Kernels at the node offsets on the 2g-periodic grid.
    off = jnp.asarray(_circulant_offsets(g), dtype) * (h / p)
    d2 = off * off if d == 1 else off[:, None] ** 2 + off[None, :] ** 2
    u = 1.0 / (1.0 + d2 / dof)
    w = _pow(u, dof)
    spectra, (hat_w, hat_wu) = _forward(grids, jnp.stack([w, w * u]), g, d)  # (1 + d, ...)
    # Z + N = sum_i sum_j w_ij = <g1, w * g1> over the grid of the charges 1: by Parseval from the
    # spectra, without going back to the grid (the real part: the kernel is even).
    power = jnp.real(spectra[0] * jnp.conj(spectra[0]) * hat_w) * _parseval_weights(g).astype(dtype)
    z = jnp.sum(power) / (2 * g) ** d - n  # minus the self terms w_ii = 1
    pots = _backward(spectra * hat_wu, g, d).reshape(1 + d, -1)  # sum_j w u [1, y_j - c]
    at = jnp.sum(wts[None] * jnp.take(pots, flat_idx, axis=1), axis=-1)  # (1 + d, N)
    forces = jnp.stack([yc[:, c] * at[0] - at[1 + c] for c in range(d)], axis=1)
    return forces, z


@functools.partial(
    jax.jit,
    static_argnames=("method", "dof", "with_kl", "n_boxes", "n_interpolation_points", "block_size"),
)
def kl_gradient(
    y,
    aff: Affinities,
    *,
    method: str = "exact",
    dof: float = 1.0,
    exaggeration: float | jax.Array = 1.0,
    with_kl: bool = True,
    n_boxes: int = 50,
    n_interpolation_points: int = 3,
    block_size: int | None = None,
) -> Forces:
    """The KL divergence of a t-SNE embedding and its gradient (exact or FFT repulsion).

    Args:
      y: ``(N, d)`` embedding.
      aff: :class:`Affinities` of the data.
      method: ``"exact"`` (all pairs) or ``"fft"`` (interpolation, ``d`` <= 2).
      dof: degrees of freedom ``a`` of the kernel ``(1 + |y_i - y_j|^2 / a)^-a`` (1: Student-t).
      exaggeration: ``P`` is multiplied by this in the gradient (early exaggeration); the
        reported KL is always that of the true ``P``.
      with_kl: compute the KL divergence (else it is NaN; saves ``N k`` logarithms).
      n_boxes, n_interpolation_points: the FFT grid (``method="fft"``).
      block_size: rows per block of the exact sum (``method="exact"``).

    Returns:
      :class:`Forces` ``(kl, gradient, z)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxplain._tsne import affinities, gradients
      >>> x = jax.random.normal(jax.random.key(0), (40, 3))
      >>> a = affinities.joint_probabilities(x, perplexity=5.0)
      >>> y = jax.random.normal(jax.random.key(1), (40, 2))
      >>> out = gradients.kl_gradient(y, a)
      >>> auto = jax.grad(lambda y: gradients.kl_gradient(y, a).kl)(y)
      >>> bool(jnp.allclose(out.gradient, auto, atol=1e-6))
      True

    References:
      van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9.
      Linderman et al. (2019), "Fast interpolation-based t-SNE for improved visualization of
      single-cell RNA-seq data", Nature Methods 16 (``method="fft"``).
      Kobak, Linderman, Steinerberger, Kluger & Berens (2019), "Heavy-tailed kernels reveal a
      finer cluster structure in t-SNE visualisations", ECML PKDD (``dof``).
    """
    dof = _check_dof(dof)
    if method == "exact":
        rep, z = repulsion_exact(y, dof=dof, block_size=block_size)
    elif method == "fft":
        rep, z = repulsion_fft(
            y, dof=dof, n_boxes=n_boxes, n_interpolation_points=n_interpolation_points
        )
    else:
        raise ValueError(f"kl_gradient: unknown method {method!r}; choose 'exact' or 'fft'.")
    att, p_log_w = attraction(y, aff, dof=dof, with_kl=with_kl)
    grad = 4.0 * (exaggeration * att - rep / z)
    if with_kl:
        kl = aff.p_log_p.astype(y.dtype) - p_log_w + jnp.log(z)
    else:
        kl = jnp.full((), jnp.nan, y.dtype)
    return Forces(kl, grad.astype(y.dtype), z)
